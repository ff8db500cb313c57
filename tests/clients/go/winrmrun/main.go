// winrmrun runs commands on a WinRM endpoint with the Go WinRM client masterzen/winrm (the client behind
// Packer's and Terraform's WinRM communicators) and prints one JSON line per command:
// {"command", "stdout", "stderr", "exit_code", "error"}.
//
// Built offline from Debian's golang-github-masterzen-winrm-dev (GO111MODULE=off, GOPATH=/usr/share/gocode);
// used by tests/contract/test_go_client.py against the kmsfleet lab. The password comes from the environment
// variable WINRMRUN_PASSWORD, never from the command line.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/masterzen/winrm"
)

type result struct {
	Command  string `json:"command"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error"`
}

func main() {
	host := flag.String("host", "127.0.0.1", "WinRM host (loopback only in the tests)")
	port := flag.Int("port", 5985, "WinRM port")
	user := flag.String("user", "administrator", "user name (DOMAIN\\user or a bare name)")
	auth := flag.String("auth", "ntlm", "ntlm or basic")
	timeout := flag.Duration("timeout", 60*time.Second, "HTTP timeout per request")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: winrmrun [-host H] [-port P] [-user U] [-auth ntlm|basic] COMMAND...")
		os.Exit(2)
	}

	endpoint := winrm.NewEndpoint(*host, *port, false, false, nil, nil, nil, *timeout)
	params := winrm.DefaultParameters
	switch *auth {
	case "ntlm":
		params.TransportDecorator = func() winrm.Transporter { return &winrm.ClientNTLM{} }
	case "basic":
		// the default transport signs in with Basic
	default:
		fmt.Fprintf(os.Stderr, "unknown -auth %q\n", *auth)
		os.Exit(2)
	}
	client, err := winrm.NewClientWithParameters(endpoint, *user, os.Getenv("WINRMRUN_PASSWORD"), params)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(3)
	}

	out := json.NewEncoder(os.Stdout)
	for _, command := range flag.Args() {
		stdout, stderr, code, runErr := client.RunWithString(command, "")
		res := result{Command: command, Stdout: stdout, Stderr: stderr, ExitCode: code}
		if runErr != nil {
			res.Error = runErr.Error()
		}
		if err := out.Encode(res); err != nil {
			os.Exit(4)
		}
	}
}
