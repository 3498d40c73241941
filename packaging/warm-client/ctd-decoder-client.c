/*
 * ctd-decoder-client: the warm path's small client, for installs whose own start-up (a PyInstaller
 * bundle, a Python interpreter) would eat what the warm server saves.
 *
 * It speaks ctd_decoder/decoder/warm/protocol.py: the request, then "A" from the server, then "G"
 * with stdin, stdout, stderr and fd 3 (those open) as SCM_RIGHTS, then "S" and the exit status.
 * If no server answers (no socket, refused, no "A" within a second, CTD_DECODER_WARM_SOCKET=off),
 * it execs the real decoder with the same argv: $CTD_DECODER_COLD, else COLD_NAME ("ctd-decoder"; a
 * platform wheel builds it with "ctd-decoder-python", its Python entry point) next to this executable,
 * with CTD_DECODER_WARM_SOCKET=off so that it does not try the server a second time.
 * After "G" is sent it never falls back: the layer may be partly read already. A directory as stdin is
 * refused before any of this (one line, exit status 1).
 *
 * Build: cc -O2 -o ctd-decoder-client ctd-decoder-client.c   (-DCOLD_NAME='"name"' for another fallback)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef COLD_NAME
#define COLD_NAME "ctd-decoder"
#endif
#define SOCKET_ENV "CTD_DECODER_WARM_SOCKET"
#define DEFAULT_SOCKET "/run/ctd-decoder/warm.sock"
#define MAGIC "ctd-decoder-warm/1"
#define MAX_REQUEST (1 << 20)
#define SERVER_GONE                                                                                 \
    "ctd-decoder: the warm decoder server went away before the layer was done "                  \
    "(see its log; stop it, or set " SOCKET_ENV "=off, to decode in-process)\n"

#define STDIN_IS_A_DIRECTORY                                                                        \
    "ctd-decoder: stdin is a directory, not a readable stream: containerd pipes the encrypted layer "  \
    "to ctd-decoder's stdin\n"

static char request[MAX_REQUEST + 4];
static size_t used = 4;

static int append(const char *text, int separator) {
    size_t length = strlen(text);
    if (used + length + 1 > sizeof request) return -1;
    if (separator) request[used++] = '\0';
    memcpy(request + used, text, length);
    used += length;
    return 0;
}

static int is_self(const char *path, const char *self, ssize_t self_length) {
    char target[PATH_MAX];
    return self_length > 0 && realpath(path, target) != NULL && strcmp(target, self) == 0;
}

static void exec_cold(char **argv) {
    char path[PATH_MAX], self[PATH_MAX];
    const char *cold = getenv("CTD_DECODER_COLD");
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - sizeof "/" COLD_NAME);
    if (n > 0) self[n] = '\0';
    /* $CTD_DECODER_COLD naming this client (a client handing over to a pip install's client, which is
     * the platform wheel's ctd-decoder) means this client's own fallback: never exec itself for ever. */
    if (cold == NULL || *cold == '\0' || is_self(cold, self, n)) {
        if (n <= 0) { fputs("ctd-decoder: cannot find the decoder (set CTD_DECODER_COLD)\n", stderr); _exit(1); }
        strcpy(path, self);
        char *slash = strrchr(path, '/');
        strcpy(slash ? slash + 1 : path, COLD_NAME);
        cold = path;
        if (is_self(cold, self, n)) {
            fprintf(stderr, "ctd-decoder: %s is the warm client itself, not a decoder (set CTD_DECODER_COLD)\n", cold);
            _exit(1);
        }
    }
    setenv(SOCKET_ENV, "off", 1);
    execv(cold, argv);
    fprintf(stderr, "ctd-decoder: cannot run %s: %s\n", cold, strerror(errno));
    _exit(1);
}

static int write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

static ssize_t read_full(int fd, char *data, size_t size) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* What the Python decoder does on failure under containerd (ctd_decoder/decoder/exit_race.py). */
static void hold_stdout_until_reaped(void) {
    struct stat info;
    if (getenv("STREAM_PROCESSOR_MEDIATYPE") == NULL || fstat(1, &info) != 0 || !S_ISFIFO(info.st_mode)) return;
    pid_t decoder = getpid();
    if (fork() != 0) return;
    for (int fd = 0; fd < 1024; fd++)
        if (fd != 1) close(fd);
    struct timespec step = {0, 2000000}, margin = {0, 100000000};
    for (int i = 0; i < 500 && kill(decoder, 0) == 0; i++) nanosleep(&step, NULL);
    nanosleep(&margin, NULL);
    _exit(0);
}

/* stdin must be a stream to read the layer from. A directory there makes the bundle's interpreter abort
 * in its start-up ("Fatal Python error: init_sys_streams: <stdin> is a directory, cannot continue" and a
 * stack header), whatever the arguments: say it in one line instead, warm or cold alike. */
static void refuse_directory_stdin(void) {
    struct stat info;
    if (fstat(0, &info) != 0 || !S_ISDIR(info.st_mode)) return;
    fputs(STDIN_IS_A_DIRECTORY, stderr);
    hold_stdout_until_reaped();
    exit(1);
}

int main(int argc, char **argv) {
    refuse_directory_stdin();
    const char *path = getenv(SOCKET_ENV);
    if (path == NULL) path = DEFAULT_SOCKET;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (*path == '\0' || strcmp(path, "off") == 0 || strlen(path) >= sizeof address.sun_path || access(path, F_OK) != 0)
        exec_cold(argv);
    strcpy(address.sun_path, path);

    char cwd[PATH_MAX], number[32];
    if (getcwd(cwd, sizeof cwd) == NULL) exec_cold(argv);
    mode_t mask = umask(022);
    umask(mask);
    int fds[4], count = 0, fd_mask = 0;
    for (int fd = 0; fd < 4; fd++)
        if (fcntl(fd, F_GETFD) != -1) { fds[count++] = fd; fd_mask |= 1 << fd; }
    int failed = append(MAGIC, 0) | append(cwd, 1);
    snprintf(number, sizeof number, "%u", (unsigned)mask);
    failed |= append(number, 1);
    snprintf(number, sizeof number, "%d", fd_mask);
    failed |= append(number, 1);
    snprintf(number, sizeof number, "%d", argc);
    failed |= append(number, 1);
    for (int i = 0; i < argc; i++) failed |= append(argv[i], 1);
    for (char **entry = environ; *entry; entry++) failed |= append(*entry, 1);
    if (failed) exec_cold(argv);
    size_t body = used - 4;
    request[0] = (char)(body >> 24); request[1] = (char)(body >> 16); request[2] = (char)(body >> 8); request[3] = (char)body;

    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval bound = {1, 0}, forever = {0, 0};
    char answer[5];
    if (sock < 0 || setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound) != 0 ||
        setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound) != 0 ||
        connect(sock, (struct sockaddr *)&address, sizeof address) != 0 || write_all(sock, request, used) != 0 ||
        read_full(sock, answer, 1) != 1 || answer[0] != 'A') {
        if (sock >= 0) close(sock);
        exec_cold(argv);
    }
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever);

    char go = 'G';
    struct iovec vector = {.iov_base = &go, .iov_len = 1};
    union { char buffer[CMSG_SPACE(sizeof fds)]; struct cmsghdr align; } control;
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1};
    if (count > 0) {
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    }
    ssize_t sent;
    do sent = sendmsg(sock, &message, MSG_NOSIGNAL); while (sent < 0 && errno == EINTR);
    if (sent != 1) { close(sock); exec_cold(argv); }  /* the server went away before our go-ahead */

    int status = 1;
    if (read_full(sock, answer, 5) == 5 && answer[0] == 'S') {
        status = (int)((unsigned)(unsigned char)answer[1] << 24 | (unsigned)(unsigned char)answer[2] << 16 |
                       (unsigned)(unsigned char)answer[3] << 8 | (unsigned)(unsigned char)answer[4]);
    } else {
        write_all(2, SERVER_GONE, sizeof SERVER_GONE - 1);
    }
    close(sock);
    if (status != 0) hold_stdout_until_reaped();
    return status;
}
