package web_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/emuhost"
	"github.com/imago-ima/imago/internal/fleettest"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/store"
	"github.com/imago-ima/imago/verifier"
	"github.com/imago-ima/imago/verifier/client"
)

// browser starts headless Chromium (Debian's chromium package) for the
// test, as root needs it: no sandbox, a fresh profile, no network of its
// own (no updates, no sync, no background requests).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := lookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testenv.Missing(t, "chromium", "no chromium to drive the fleet page (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	sctx := ctx
	_ = sctx
	if err := chromedp.Do(ctx); err != nil { // starts the browser, for the life of ctx
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH") + ":/usr/bin") {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

// TestFleetPage serves the verifier with emulated hosts attesting, opens
// the fleet page in headless Chromium, and checks what a person sees: the
// nodes listed with their states and the counts; a node turning to fail
// shown as fail, with the file and failure id, within one interval; its
// history. A screenshot is saved as the test's artifact (go test
// -artifacts: under the output directory).
func TestFleetPage(t *testing.T) {
	bctx := browser(t)
	const interval = 2 * time.Second
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the verifier stops
	ca, err := softtpm.NewCA("imago web test EK CA")
	if err != nil {
		t.Fatal(err)
	}
	url := fleettest.Serve(t, verifier.Config{Store: st, EKRoots: enroll.NewRoots([]*x509.Certificate{ca.Cert}), Interval: interval,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	cl, err := client.New(url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := emuhost.Policy(ca)
	if err != nil {
		t.Fatal(err)
	}
	const count = 6
	var hosts []*emuhost.Host
	for i := range count {
		h, err := emuhost.New(ca, fmt.Sprintf("web-%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: h.Name, RuntimePolicy: policy}); err != nil {
			t.Fatal(err)
		}
		if i == count-1 {
			hosts = append(hosts, h) // one node stays enrolling
			continue
		}
		h.Measure(5)
		a := h.Attester(cl)
		if err := a.Enroll(ctx); err != nil {
			t.Fatal(err)
		}
		if res, err := a.Round(ctx); err != nil || res.Verdict != attest.VerdictPass {
			t.Fatalf("%s: %v %+v", h.Name, err, res)
		}
		hosts = append(hosts, h)
	}

	pctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	if err := chromedp.Do(pctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(css(`#nodes tbody tr[data-node="web-05"]`)),
		chromedp.WaitVisible(css(`#live.on`)),
	); err != nil {
		t.Fatalf("the page: %v", err)
	}
	rows, err := chromedp.Run(pctx, chromedp.Evaluate[float64](`document.querySelectorAll("#nodes tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	pass, err := chromedp.Run(pctx, chromedp.Text(css(`#n-pass`)))
	if err != nil {
		t.Fatal(err)
	}
	enrolling, err := chromedp.Run(pctx, chromedp.Text(css(`#n-enrolling`)))
	if err != nil {
		t.Fatal(err)
	}
	if int(rows) != count || pass != fmt.Sprint(count-1) || enrolling != "1" {
		t.Fatalf("the page lists %v nodes, %s pass, %s enrolling; want %d, %d, 1", rows, pass, enrolling, count, count-1)
	}

	// web-02 runs a file outside its policy: the page shows it failing,
	// naming the file and the failure, within one interval.
	bad := hosts[2]
	if _, err := bad.IMA.Measure("/usr/local/bin/not-in-policy", []byte("rogue")); err != nil {
		t.Fatal(err)
	}
	res, err := bad.Attester(cl).Round(ctx)
	if err != nil || res.Verdict != attest.VerdictFail {
		t.Fatalf("the failing round: %v %+v", err, res)
	}
	failedAt := time.Now()
	wctx, wcancel := context.WithTimeout(pctx, interval)
	err = chromedp.Do(wctx, chromedp.WaitVisible(css(`#nodes tbody tr[data-node="web-02"][data-state="fail"]`)))
	wcancel()
	if err != nil {
		t.Fatalf("web-02 not shown failing within one interval (%v): %v", interval, err)
	}
	seen := time.Since(failedAt)
	failText, err := chromedp.Run(pctx, chromedp.Text(css(`#nodes tbody tr[data-node="web-02"] td:last-child`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failText, "/usr/local/bin/not-in-policy") || !strings.Contains(failText, "not_in_allowlist") {
		t.Errorf("web-02's failures on the page: %q", failText)
	}
	failCount, err := chromedp.Run(pctx, chromedp.Text(css(`#n-fail`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(pctx, chromedp.Click(css(`#nodes tbody tr[data-node="web-02"]`)), chromedp.WaitVisible(css(`#d-history tbody tr`))); err != nil {
		t.Fatal(err)
	}
	history, err := chromedp.Run(pctx, chromedp.Text(css(`#d-history tbody`)))
	if err != nil {
		t.Fatal(err)
	}
	if failCount != "1" || !strings.Contains(history, "fail") || !strings.Contains(history, "pass") {
		t.Errorf("fail count %q; history on the page: %q", failCount, history)
	}
	png, err := chromedp.Run(pctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.ArtifactDir(), "fleet-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("web-02 shown failing %v after its verdict (interval %v); screenshot: %s", seen.Round(time.Millisecond), interval, shot)
}
