// Package tpmtest starts swtpm processes for tests, so that tests of tpm and
// of the packages above it (the agent) run against a real TPM emulator, and
// reads PCRs back with tpm2-tools as an independent oracle.
//
// A test that needs a TPM calls StartSwtpm; a test that must start the TPM
// after the code under test (the agent's deferred start) calls New, hands
// s.URI to the code, and calls s.Start later. Tests skip when swtpm or
// swtpm_setup is not installed (the CI image installs them).
package tpmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
)

// startTimeout bounds waiting for a started swtpm to accept connections.
const startTimeout = 10 * time.Second

// Swtpm is one swtpm TPM 2.0 emulator: its state directory (made by
// swtpm_setup, so it keeps its banks across restarts) and its command
// channel. Each Start is a fresh power-on: PCRs are reset.
type Swtpm struct {
	// URI is the tpm.Open URI of the command channel: tcp://127.0.0.1:PORT
	// or unix:///PATH. It is fixed at New and stays the same across
	// restarts.
	URI string
	// Dir is the state directory.
	Dir string
	// Port is the server port (tcp only); the control channel is Port+1.
	Port int
	// Socket is the server socket path (unix only).
	Socket string

	tb        testing.TB
	noStartup bool
	banks     []string
	ek        *LocalCA
	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
}

// Options says how to set up an emulator.
type Options struct {
	// Banks are the PCR banks to allocate, as swtpm_setup --pcr-banks takes
	// them (sha1, sha256, sha384, sha512). Empty means sha256.
	Banks []string
	// Unix serves the command channel on a unix socket instead of tcp.
	Unix bool
	// NoStartup starts swtpm powered on but without TPM2_Startup, so the
	// first command gets TPM_RC_INITIALIZE until a client sends Startup.
	NoStartup bool
	// EK, if set, manufactures the state with RSA and ECC endorsement keys
	// and their certificates issued by this private CA (see LocalCA).
	EK *LocalCA
}

// Skip skips the test (testenv.Tool: a failure under CI) if swtpm or
// swtpm_setup is not installed.
func Skip(tb testing.TB) {
	tb.Helper()
	testenv.Tool(tb, "swtpm")
	testenv.Tool(tb, "swtpm_setup")
}

// StartSwtpm sets up and starts a tcp swtpm with the given banks (default
// sha256) and returns its URI. It is stopped when the test ends.
func StartSwtpm(tb testing.TB, banks ...string) string {
	tb.Helper()
	s := New(tb, Options{Banks: banks})
	s.Start()
	return s.URI
}

// New manufactures an emulator's state with swtpm_setup in a temporary
// directory and picks its address, but does not start it: tpm.Open(s.URI)
// fails with tpm.ErrNoTPM until Start. It skips the test if swtpm is not
// installed. The process, if started, is killed when the test ends.
func New(tb testing.TB, o Options) *Swtpm {
	tb.Helper()
	Skip(tb)
	banks := o.Banks
	if len(banks) == 0 {
		banks = []string{"sha256"}
	}
	dir := tb.TempDir()
	s := &Swtpm{Dir: dir, tb: tb, noStartup: o.NoStartup, banks: banks, ek: o.EK}
	if err := s.manufacture(); err != nil {
		tb.Fatal(err)
	}
	if o.Unix {
		// sun_path is short (108 bytes); TempDir paths can be long.
		sd, err := os.MkdirTemp("", "swtpm")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(sd) })
		s.Socket = filepath.Join(sd, "cmd.sock")
		s.URI = "unix://" + s.Socket
	} else {
		s.Port = freePortPair(tb)
		s.URI = fmt.Sprintf("tcp://127.0.0.1:%d", s.Port)
	}
	tb.Cleanup(s.Stop)
	return s
}

// manufacture makes a new TPM state in s.Dir with swtpm_setup: new seeds,
// counters from the start, the banks asked for.
func (s *Swtpm) manufacture() error {
	args := []string{"--tpm2", "--tpmstate", s.Dir, "--pcr-banks", strings.Join(s.banks, ","), "--overwrite"}
	if s.ek != nil {
		args = append(args, s.ek.setupArgs(s.tb, s.banks)...)
	}
	setup := exec.Command("swtpm_setup", args...)
	if out, err := setup.CombinedOutput(); err != nil {
		return fmt.Errorf("tpmtest: swtpm_setup --pcr-banks %s: %v\n%s", strings.Join(s.banks, ","), err, out)
	}
	return nil
}

// Replace stops the emulator, if it runs, and manufactures a new TPM in
// its place: a different TPM (new seeds, fresh counters) at the same
// address. Start powers it on.
func (s *Swtpm) Replace() {
	s.tb.Helper()
	s.Stop()
	if err := s.manufacture(); err != nil {
		s.tb.Fatal(err)
	}
}

// freePortPair returns a port P with P and P+1 free on 127.0.0.1 now.
func freePortPair(tb testing.TB) int {
	tb.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	tb.Fatal("tpmtest: no free port pair on 127.0.0.1")
	return 0
}

// TCTI returns the tpm2-tools TCTI string for this emulator
// ("swtpm:host=127.0.0.1,port=P"); tcp only.
func (s *Swtpm) TCTI() string {
	return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", s.Port)
}

// Start starts swtpm (flags not-need-init,startup-clear, so it is powered
// on and started) and waits until the command channel accepts connections.
// It fails the test on error.
func (s *Swtpm) Start() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("tpmtest: %v", err)
	}
}

func (s *Swtpm) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("swtpm already running")
	}
	flags := "not-need-init,startup-clear"
	if s.noStartup {
		flags = "not-need-init"
	}
	args := []string{"socket", "--tpm2", "--tpmstate", "dir=" + s.Dir,
		"--flags", flags,
		"--log", "file=" + filepath.Join(s.Dir, "swtpm.log") + ",level=1"}
	network, addr := "tcp", fmt.Sprintf("127.0.0.1:%d", s.Port)
	if s.Socket != "" {
		network, addr = "unix", s.Socket
		os.Remove(s.Socket)
		args = append(args, "--server", "type=unixio,path="+s.Socket,
			"--ctrl", "type=unixio,path="+s.Socket+".ctrl")
	} else {
		args = append(args,
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.Port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.Port+1))
	}
	cmd := exec.Command("swtpm", args...)
	cmd.SysProcAttr = procAttr()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start swtpm: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("swtpm exited at start: %v\n%s%s", cmd.ProcessState, out.String(), s.log())
		default:
		}
		if c, err := net.DialTimeout(network, addr, 100*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("swtpm did not listen on %s %s within %v\n%s%s", network, addr, startTimeout, out.String(), s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd, s.done = cmd, done
	return nil
}

func (s *Swtpm) log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "swtpm.log"))
	return string(b)
}

// Stop kills swtpm if it runs and waits for it to exit. The state directory
// stays, so Start can power it on again (PCRs reset). Stop is safe to call
// more than once.
func (s *Swtpm) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Running reports whether swtpm was started and has not exited.
func (s *Swtpm) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// PCRRead runs `tpm2_pcrread -T <TCTI> <selection>` (selection as
// tpm2_pcrread takes it, e.g. "sha1:16,23+sha256:16,23"; "" for all) and parses its YAML
// output, the oracle independent of imago. It skips the test if tpm2_pcrread
// is not installed. swtpm serves one connection at a time, so no other
// client may hold a connection meanwhile (tpm's socket transport connects per
// command, so an open *tpm.TPM is fine); it gives up after 20 seconds.
func (s *Swtpm) PCRRead(tb testing.TB, selection string) pcr.Set {
	tb.Helper()
	if s.Socket != "" {
		tb.Fatal("tpmtest: PCRRead needs a tcp swtpm (the swtpm TCTI speaks tcp)")
	}
	return PCRRead(tb, s.TCTI(), selection)
}

// PCRRead runs tpm2_pcrread with the given TCTI; see (*Swtpm).PCRRead.
func PCRRead(tb testing.TB, tcti, selection string) pcr.Set {
	tb.Helper()
	args := []string{"-T", tcti}
	if selection != "" {
		args = append(args, selection)
	}
	out := runTool(tb, "tpm2_pcrread", args...)
	set, err := parsePCRRead(out)
	if err != nil {
		tb.Fatalf("tpmtest: tpm2_pcrread output: %v\n%s", err, out)
	}
	return set
}

// AllocatedBanks runs `tpm2_getcap -T <TCTI> pcrs` and returns the banks
// whose selection is not empty, in the order tpm2_getcap lists them (the
// TPM's order). It skips the test if tpm2_getcap is not installed.
func (s *Swtpm) AllocatedBanks(tb testing.TB) []pcr.Bank {
	tb.Helper()
	out := runTool(tb, "tpm2_getcap", "-T", s.TCTI(), "pcrs")
	banks, err := parseGetcapPCRs(out)
	if err != nil {
		tb.Fatalf("tpmtest: tpm2_getcap pcrs output: %v\n%s", err, out)
	}
	return banks
}

// PCRExtend runs `tpm2_pcrextend -T <TCTI> <spec>` (spec as
// tpm2_pcrextend takes it, e.g. "23:sha1=<hex>,sha256=<hex>"): an extend
// done by a tool independent of imago. tcp only.
func (s *Swtpm) PCRExtend(tb testing.TB, spec string) {
	tb.Helper()
	runTool(tb, "tpm2_pcrextend", "-T", s.TCTI(), spec)
}

// runTool runs a tpm2-tools command with a timeout (swtpm queues a second
// client, so a held connection would otherwise hang it).
func runTool(tb testing.TB, name string, args ...string) []byte {
	tb.Helper()
	testenv.Tool(tb, name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("tpmtest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// parseGetcapPCRs parses tpm2_getcap pcrs output:
//
//	selected-pcrs:
//	  - sha1: [ 0, 1, 2 ]
//	  - sha512: [ ]
func parseGetcapPCRs(out []byte) ([]pcr.Bank, error) {
	var banks []pcr.Bank
	sc := bufio.NewScanner(bytes.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		item, ok := strings.CutPrefix(line, "- ")
		if !ok {
			continue
		}
		name, list, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no colon: %q", n, line)
		}
		b, err := pcr.ParseBank(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		list = strings.TrimSpace(list)
		if !strings.HasPrefix(list, "[") || !strings.HasSuffix(list, "]") {
			return nil, fmt.Errorf("line %d: bad PCR list %q", n, list)
		}
		if strings.TrimSpace(list[1:len(list)-1]) != "" {
			banks = append(banks, b)
		}
	}
	return banks, sc.Err()
}

// parsePCRRead parses tpm2_pcrread's default output:
//
//	sha256:
//	  23: 0x00...
func parsePCRRead(out []byte) (pcr.Set, error) {
	set := make(pcr.Set)
	var bank pcr.Bank
	have := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no colon: %q", n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" {
			b, err := pcr.ParseBank(k)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			bank, have = b, true
			continue
		}
		if !have {
			return nil, fmt.Errorf("line %d: PCR before any bank", n)
		}
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i > pcr.MaxIndex {
			return nil, fmt.Errorf("line %d: bad PCR index %q", n, k)
		}
		d, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(v), "0x"))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		set.Put(bank, i, d)
	}
	return set, sc.Err()
}
