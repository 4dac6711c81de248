package agent

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// childEnv carries a Config to a re-executed test binary that runs the agent
// as a separate process, so that the crash test can kill -9 it.
const childEnv = "IMAGO_AGENT_TEST_CHILD"

type childConfig struct {
	TPM, StateDir, RuntimeDir, Socket, Log string
	// NoFile, if set, is the agent's RLIMIT_NOFILE.
	NoFile uint64
	// Client, if set, makes the child a client: it asks the agent at this
	// socket for its status and prints the error code it gets (or "ok").
	Client string
}

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(runChild(v))
	}
	os.Exit(m.Run())
}

func runChild(v string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(v), &cc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if cc.Client != "" {
		_, err := QueryStatus(context.Background(), cc.Client)
		var re *RemoteError
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.As(err, &re):
			fmt.Println(re.Code)
		case errors.Is(err, ErrNotRunning):
			fmt.Println("not-running")
		default:
			fmt.Println("error:", err)
		}
		return 0
	}
	if cc.NoFile > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: cc.NoFile, Max: cc.NoFile}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	lf, err := os.OpenFile(cc.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err = Run(ctx, Config{TPM: cc.TPM, StateDir: cc.StateDir, RuntimeDir: cc.RuntimeDir, Socket: cc.Socket,
		PCR: DefaultPCR, TPMWait: 20 * time.Second, PollInterval: 20 * time.Millisecond,
		SecurityFS: filepath.Join(cc.StateDir, "no-securityfs"),
		Logger:     slog.New(slog.NewTextHandler(lf, nil))})
	if err != nil {
		fmt.Fprintln(lf, "child: ", err)
		return 1
	}
	return 0
}

// startChild runs this test binary as a child agent (or client) with cc;
// exited receives its exit.
func startChild(t *testing.T, cc childConfig) (cmd *exec.Cmd, exited <-chan error) {
	t.Helper()
	b, _ := json.Marshal(cc)
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	return cmd, ch
}

// TestCrashKill9 kills the agent process with SIGKILL many times while a
// client streams measurements. After each restart every acknowledged entry
// is in the list and the list replays to the TPM in every bank.
func TestCrashKill9(t *testing.T) {
	testenv.SkipShort(t)
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, _ := testConfig(t, s.URI)
	logPath := filepath.Join(t.TempDir(), "agent.log")
	cc := childConfig{TPM: s.URI, StateDir: cfg.StateDir, RuntimeDir: cfg.RuntimeDir, Socket: cfg.Socket, Log: logPath}
	dir := t.TempDir()
	acked := map[string]string{} // template digest -> path
	rounds := 12
	seq := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range rounds + 1 {
		cmd, waited := startChild(t, cc)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := QueryStatus(context.Background(), cfg.Socket); err == nil {
				break
			}
			select {
			case err := <-waited:
				log, _ := os.ReadFile(logPath)
				t.Fatalf("round %d: agent exited: %v\n%s", round, err, log)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: agent did not come up", round)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// After the restart: every acknowledged entry is listed, and the
		// list replays to the TPM.
		list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
		have := map[string]bool{}
		for _, e := range list {
			have[hex.EncodeToString(e.Digest)] = true
		}
		for d, p := range acked {
			if !have[d] {
				t.Fatalf("round %d: acknowledged entry %s (%s) lost", round, d, p)
			}
		}
		checkReplay(t, s, cfg.PCR, list)
		if round == rounds {
			cmd.Process.Signal(syscall.SIGTERM)
			<-waited
			break
		}

		// Stream measurements, one file per request, and kill -9 at a
		// random moment.
		var (
			mu   sync.Mutex
			stop = make(chan struct{})
			wg   sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				seq++
				p := filepath.Join(dir, fmt.Sprintf("f%05d", seq))
				mu.Unlock()
				os.WriteFile(p, []byte(p), 0o644)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := MeasurePaths(ctx, cfg.Socket, []string{p})
				cancel()
				if err != nil {
					return // killed
				}
				if res[0].Status == StatusMeasured {
					mu.Lock()
					acked[res[0].TemplateDigest] = p
					mu.Unlock()
				}
			}
		}()
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		cmd.Process.Kill()
		<-waited
		close(stop)
		wg.Wait()
	}
	if len(acked) < rounds {
		t.Fatalf("only %d measurements acknowledged in %d rounds", len(acked), rounds)
	}
	log, _ := os.ReadFile(logPath)
	t.Logf("%d rounds, %d acknowledged measurements; recoveries: %d one entry ahead, %d torn records cut",
		rounds, len(acked), strings.Count(string(log), "one entry ahead"), strings.Count(string(log), "dropping a torn record"))
}

// checkReplay compares a list with the TPM (tpm2_pcrread) in every bank.
func checkReplay(t *testing.T, s *tpmtest.Swtpm, pcrIdx int, list []*ima.Entry) {
	t.Helper()
	banks := s.AllocatedBanks(t)
	pcrs := s.PCRRead(t, "")
	got := replayList(t, list, banks)
	for _, b := range banks {
		w, _ := pcrs.Get(b, pcrIdx)
		g, _ := got.Get(b, pcrIdx)
		if string(w) != string(g) {
			t.Fatalf("%s PCR %d: TPM %x, %d entries replay to %x", b, pcrIdx, w, len(list), g)
		}
	}
}
