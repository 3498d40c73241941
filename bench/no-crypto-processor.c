/* A stream processor that does no cryptography: the floor for any decoder in bench/pull.py.
 *
 * containerd runs it exactly as it runs the ocicrypt decoder (the same processor entries, media types and
 * arguments, which it ignores). It does what every decoder must do around its cryptography, and nothing else:
 *   - reads the payload on fd 3 to its end and finds the layer's digest in it: "sha256:" + 64 lowercase hex
 *     (the descriptor's digest is a protobuf string field, stored as its raw bytes; every such string in the
 *     payload must be that one digest);
 *   - appends the digest and a newline to the file named by $CTD_BENCH_CALLS_FILE (so that the benchmark can
 *     tell that, and for which layers, it ran);
 *   - drains stdin (the encrypted blob) to its end and, at the same time, writes the layer's plaintext (the
 *     file $CTD_BENCH_PLAINTEXT_DIR/<the digest's hex>, prepared before the pulls) to stdout;
 *   - exits 0.
 * Anything missing (no payload, no digest in it, no plaintext for the digest, an unset variable): one line
 * on stderr, exit 1, nothing on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME "no-crypto-processor"
#define PAYLOAD_MAX (1 << 20)
#define PREFIX "sha256:"
#define PREFIX_LEN 7
#define HEX_LEN 64
#define CHUNK (1 << 20)

static char payload[PAYLOAD_MAX];
static char buffer[1 << 16];

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, NAME ": %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int is_lower_hex(const char *text)
{
    for (int i = 0; i < HEX_LEN; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

/* The payload's one digest into hex (HEX_LEN + 1 bytes): 0, or -1 when there is none or more than one. */
static int find_digest(const char *data, size_t length, char *hex)
{
    int found = 0;
    for (size_t at = 0; at + PREFIX_LEN + HEX_LEN <= length; at++) {
        if (memcmp(data + at, PREFIX, PREFIX_LEN) != 0 || !is_lower_hex(data + at + PREFIX_LEN))
            continue;
        if (found && memcmp(hex, data + at + PREFIX_LEN, HEX_LEN) != 0)
            return -1;
        memcpy(hex, data + at + PREFIX_LEN, HEX_LEN);
        hex[HEX_LEN] = '\0';
        found = 1;
    }
    return found ? 0 : -1;
}

static ssize_t read_payload(void)
{
    size_t length = 0;
    for (;;) {
        ssize_t got = read(3, payload + length, sizeof payload - length);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -1 : (ssize_t)length;
        length += (size_t)got;
        if (length == sizeof payload) {
            errno = 0; /* too large, not a failed read */
            return -1;
        }
    }
}

static int append_call(const char *calls, const char *hex)
{
    char line[PREFIX_LEN + HEX_LEN + 2];
    snprintf(line, sizeof line, PREFIX "%s\n", hex);
    int fd = open(calls, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t written = write(fd, line, strlen(line)); /* one append: whole lines even from parallel layers */
    int closed = close(fd);
    return written == (ssize_t)strlen(line) && closed == 0 ? 0 : -1;
}

/* Drain what stdin holds now: 1 while it is open, 0 at its end, -1 on an error. */
static int drain_stdin(int null_fd, int *use_splice)
{
    for (;;) {
        ssize_t got;
        if (*use_splice) {
            got = splice(0, NULL, null_fd, NULL, CHUNK, SPLICE_F_NONBLOCK);
            if (got < 0 && errno == EINVAL) {
                *use_splice = 0;
                continue;
            }
        } else {
            got = read(0, buffer, sizeof buffer);
        }
        if (got == 0)
            return 0;
        if (got < 0)
            return errno == EAGAIN || errno == EINTR ? 1 : -1;
    }
}

/* Write what stdout takes now from the plaintext at *offset: 0, or -1 on an error. */
static int write_stdout(int plain_fd, off_t *offset, off_t size, int *use_sendfile)
{
    while (*offset < size) {
        size_t want = (size_t)(size - *offset) < CHUNK ? (size_t)(size - *offset) : CHUNK;
        ssize_t sent;
        if (*use_sendfile) {
            sent = sendfile(1, plain_fd, offset, want);
            if (sent < 0 && (errno == EINVAL || errno == ENOSYS)) {
                *use_sendfile = 0;
                continue;
            }
        } else {
            ssize_t got = pread(plain_fd, buffer, want < sizeof buffer ? want : sizeof buffer, *offset);
            if (got <= 0)
                return -1;
            sent = write(1, buffer, (size_t)got);
            if (sent > 0)
                *offset += sent;
        }
        if (sent < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (sent == 0)
            return -1;
    }
    return 0;
}

int main(void)
{
    const char *plain_dir = getenv("CTD_BENCH_PLAINTEXT_DIR");
    const char *calls = getenv("CTD_BENCH_CALLS_FILE");
    if (!plain_dir || !*plain_dir || !calls || !*calls)
        return fail("CTD_BENCH_PLAINTEXT_DIR and CTD_BENCH_CALLS_FILE must be set", NULL);
    ssize_t length = read_payload();
    if (length < 0)
        return fail("cannot read a payload of at most 1 MiB on fd 3", errno ? strerror(errno) : NULL);
    char hex[HEX_LEN + 1];
    if (find_digest(payload, (size_t)length, hex) != 0)
        return fail("the payload on fd 3 does not hold exactly one sha256 digest", NULL);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", plain_dir, hex) >= (int)sizeof path)
        return fail("CTD_BENCH_PLAINTEXT_DIR is too long", NULL);
    int plain_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (plain_fd < 0) {
        const char *what = errno == ENOENT ? "no plaintext for layer" : "cannot open the plaintext of";
        fprintf(stderr, NAME ": %s " PREFIX "%s\n", what, hex);
        return 1;
    }
    struct stat plain_stat;
    if (fstat(plain_fd, &plain_stat) != 0)
        return fail("cannot stat the plaintext", strerror(errno));
    if (append_call(calls, hex) != 0)
        return fail("cannot append to CTD_BENCH_CALLS_FILE", strerror(errno));
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd < 0)
        return fail("cannot open /dev/null", strerror(errno));
    if (fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) != 0 ||
        fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK) != 0)
        return fail("cannot make stdin and stdout non-blocking", strerror(errno));

    /* Both at once, as a decoder streams: containerd feeds stdin while it unpacks what stdout gives it. */
    off_t offset = 0, size = plain_stat.st_size;
    int stdin_open = 1, use_splice = 1, use_sendfile = 1;
    while (stdin_open || offset < size) {
        struct pollfd fds[2];
        nfds_t count = 0;
        if (stdin_open)
            fds[count++] = (struct pollfd){.fd = 0, .events = POLLIN};
        if (offset < size)
            fds[count++] = (struct pollfd){.fd = 1, .events = POLLOUT};
        if (poll(fds, count, -1) < 0) {
            if (errno == EINTR)
                continue;
            return fail("poll", strerror(errno));
        }
        for (nfds_t i = 0; i < count; i++) {
            if (!fds[i].revents)
                continue;
            if (fds[i].fd == 0) {
                int state = drain_stdin(null_fd, &use_splice);
                if (state < 0)
                    return fail("cannot read stdin", strerror(errno));
                stdin_open = state;
            } else if (write_stdout(plain_fd, &offset, size, &use_sendfile) != 0) {
                return fail("cannot write stdout", strerror(errno));
            }
        }
    }
    return 0;
}
