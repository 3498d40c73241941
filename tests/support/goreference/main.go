// Command ctd-decoder-go-reference is the project's own Go reference for containerd's ctd-decoder.
//
// It follows the flow of imgcrypt's ctd-decoder (read the payload from fd 3, optionally add the keys of
// --decryption-keys-path, decrypt stdin to stdout) on top of the ocicrypt library Debian packages
// (golang-github-containers-ocicrypt-dev, 1.0.3). It is a test tool: the differential and interop tests
// run it beside the Python decoder. Written for this project from the behaviour described in its spec.
package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/typeurl"
	"github.com/containers/ocicrypt"
	"github.com/containers/ocicrypt/config"
	"github.com/containers/ocicrypt/utils"
	"github.com/gogo/protobuf/proto"
	"github.com/gogo/protobuf/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// payloadTypeURL is the type URL containerd gives the decoder's payload (an Any with a JSON value).
const payloadTypeURL = "io.containerd.ocicrypt.v1.Payload"

// keysPathFlag is the decoder's only option.
const keysPathFlag = "decryption-keys-path"

// chunkSize is how much plaintext one copy step writes to stdout.
const chunkSize = 10 * 1024

const usage = `NAME:
   ctd-decoder - ctd-decoder is used as a call-out from containerd content stream plugins

USAGE:
   ctd-decoder [global options] command [command options] [arguments...]

COMMANDS:
   help, h  Shows a list of commands or help for one command

GLOBAL OPTIONS:
   --decryption-keys-path value  Path to load decryption keys from. (optional)
   --help, -h                    show help
`

const helpCommandUsage = `NAME:
   help - Shows a list of commands or help for one command

USAGE:
   help [command]
`

// decryptedMediaTypes are the encrypted layer media types the decoder accepts.
var decryptedMediaTypes = map[string]bool{
	"application/vnd.oci.image.layer.v1.tar+gzip+encrypted": true,
	"application/vnd.oci.image.layer.v1.tar+zstd+encrypted": true,
	"application/vnd.oci.image.layer.v1.tar+encrypted":      true,
}

// Payload is what containerd hands the decoder on fd 3: the keys and the encrypted layer's descriptor.
type Payload struct {
	DecryptConfig config.DecryptConfig
	Descriptor    ocispec.Descriptor
}

func init() {
	typeurl.Register(&Payload{}, payloadTypeURL)
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses the command line like the urfave/cli application of the upstream decoder and returns the
// exit status.
func run(args []string) int {
	flags := flag.NewFlagSet("ctd-decoder", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	keysPath := flags.String(keysPathFlag, "", "")
	helpLong := flags.Bool("help", false, "")
	helpShort := flags.Bool("h", false, "")
	if err := flags.Parse(args); err != nil {
		fmt.Fprintf(os.Stdout, "Incorrect Usage: %s\n\n%s", err, usage)
		fmt.Fprintf(os.Stderr, "%s\n", err)
		return 1
	}
	if *helpLong || *helpShort {
		fmt.Fprint(os.Stdout, usage)
		return 0
	}
	if rest := flags.Args(); len(rest) > 0 && (rest[0] == "help" || rest[0] == "h") {
		return help(rest[1:])
	}
	keysPathGiven := false
	flags.Visit(func(f *flag.Flag) { keysPathGiven = keysPathGiven || f.Name == keysPathFlag })
	if err := decrypt(keysPathGiven, *keysPath); err != nil {
		fmt.Fprintf(os.Stderr, "%s\n", err)
		return 1
	}
	return 0
}

// help is the help command: the usage, or the help command's own usage, or no such topic (exit 3).
func help(topics []string) int {
	if len(topics) == 0 {
		fmt.Fprint(os.Stdout, usage)
		return 0
	}
	if topics[0] == "help" || topics[0] == "h" {
		fmt.Fprint(os.Stdout, helpCommandUsage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "No help topic for '%s'\n", topics[0])
	return 3
}

// decrypt reads the payload, adds the keys path's keys in front of the payload's, and streams stdin's
// plaintext to stdout.
func decrypt(keysPathGiven bool, keysPath string) error {
	payload, err := readPayload()
	if err != nil {
		return err
	}
	dc := &payload.DecryptConfig
	if keysPathGiven {
		fromPath, err := keysFromPath(keysPath)
		if err != nil {
			return fmt.Errorf("unable to get decryption keys in provided key path: %w", err)
		}
		combined := config.CombineCryptoConfigs([]config.CryptoConfig{
			{DecryptConfig: fromPath},
			{DecryptConfig: dc},
		})
		dc = combined.DecryptConfig
	}
	plaintext, err := decryptLayer(dc, os.Stdin, payload.Descriptor)
	if err != nil {
		return fmt.Errorf("call to DecryptLayer failed: %w", err)
	}
	for {
		if _, err := io.CopyN(os.Stdout, plaintext, chunkSize); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("could not copy data: %w", err)
		}
	}
}

// decryptLayer unwraps the layer key and returns the plaintext reader; only the encrypted layer media
// types are accepted (the check runs after the key was unwrapped, as upstream's does).
func decryptLayer(dc *config.DecryptConfig, layer io.Reader, desc ocispec.Descriptor) (io.Reader, error) {
	plaintext, _, err := ocicrypt.DecryptLayer(dc, layer, desc, false)
	if err != nil {
		return nil, err
	}
	if !decryptedMediaTypes[desc.MediaType] {
		return nil, fmt.Errorf("unsupporter layer MediaType: %s", desc.MediaType)
	}
	return plaintext, nil
}

// readPayload reads fd 3 to its end and decodes the Any it holds.
func readPayload() (*Payload, error) {
	file := os.NewFile(3, "configFd")
	data, err := io.ReadAll(file)
	file.Close()
	if err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	var envelope types.Any
	if err := proto.Unmarshal(data, &envelope); err != nil {
		return nil, fmt.Errorf("could not proto.Unmarshal() decrypt data: %w", err)
	}
	value, err := typeurl.UnmarshalAny(&envelope)
	if err != nil {
		return nil, fmt.Errorf("could not UnmarshalAny() the decrypt data: %w", err)
	}
	payload, ok := value.(*Payload)
	if !ok {
		return nil, fmt.Errorf("unknown payload type %s", envelope.TypeUrl)
	}
	return payload, nil
}

// keysFromPath reads every regular file under root (a directory walked in lexical order, or one file)
// and lets ocicrypt sort them into decryption parameters. A symbolic link anywhere is an error.
func keysFromPath(root string) (*config.DecryptConfig, error) {
	var encoded []string
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		switch {
		case err != nil:
			return err
		case info.IsDir():
			return nil
		case info.Mode()&os.ModeSymlink != 0:
			return errors.New("Symbolic links not supported in decryption keys paths")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		encoded = append(encoded, base64.StdEncoding.EncodeToString(data))
		return nil
	})
	if err != nil {
		return nil, err
	}
	parameters, err := utils.SortDecryptionKeys(strings.Join(encoded, ","))
	if err != nil {
		return nil, err
	}
	return config.InitDecryption(parameters).DecryptConfig, nil
}
