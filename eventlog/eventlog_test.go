package eventlog

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
)

// TestCorpus parses every TCG log of the repository's subset of the fixture
// corpus (testdata/public, testdata/realkernel) and compares the replay with
// every value asserted about it by others.
func TestCorpus(t *testing.T) {
	logs, values := runCorpus(t, corpusLogs(t, subsetTree(t)))
	// 15 public logs, the one in go-eventlog's linux_tpm12.json and the 16
	// real-kernel captures with a firmware log.
	if logs != 32 || values != 336 {
		t.Errorf("%d logs, %d values compared; the subset holds 32 logs with 336 asserted values", logs, values)
	}
}

// TestCorpusShared is TestCorpus over the whole corpus in ../shared: the
// README's "282 PCR values across 54 logs".
func TestCorpusShared(t *testing.T) {
	logs, values := runCorpus(t, corpusLogs(t, fullTree(t)))
	if logs != 54 || values != 282 {
		t.Errorf("%d logs, %d values compared; the corpus holds 54 logs with 282 asserted values", logs, values)
	}
}

// runCorpus checks every case and returns the number of logs and of values
// compared.
func runCorpus(t *testing.T, cases []logCase) (logs, values int) {
	checked := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := ReadLog(bytes.NewReader(c.raw))
			if err != nil {
				t.Fatalf("ReadLog: %v", err)
			}
			if l.Size != int64(len(c.raw)) {
				t.Errorf("read %d bytes of %d", l.Size, len(c.raw))
			}
			got, info, err := l.Replay()
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			t.Logf("%s, %d events, banks %v unknown %v, PCR0 init %d (locality %v, H-CRTM %v), no-action %d, PCR-1 %d, filler %d×%#x",
				l.Format, len(l.Events), info.Banks, info.Unknown, info.InitialPCR0, info.StartupLocality, info.HCRTM,
				info.NoAction, info.PCRNone, info.Filler, info.FillerByte)
			for _, w := range c.wants {
				if len(w.pcrs) == 0 {
					// The other implementation lists no PCR: no event is extended.
					if info.Extended != 0 {
						t.Errorf("%s: no PCRs, but we extended %d events", w.source, info.Extended)
					}
					continue
				}
				if n := compareWant(t, got, w, c.notInLog); n == 0 {
					t.Errorf("%s: no value compared", w.source)
				} else {
					checked += n
				}
			}
		})
	}
	t.Logf("%d logs, %d PCR values compared with independent expectations", len(cases), checked)
	return len(cases), checked
}

// TestQuirks pins which replay quirk each fixture exercises (MANIFEST.md
// rules 2, 3, 6 and the filler rule).
func TestQuirks(t *testing.T) {
	for _, tc := range []struct {
		file            string
		format          Format
		banks           []pcr.Bank
		initPCR0        uint8
		locality, hcrtm bool
		pcrNone         int
		filler          int64
		fillerByte      byte
		extra           bool // in ../shared only
	}{
		{"go-attestation/attest/testdata/short_no_action_eventlog", FormatSHA1, []pcr.Bank{pcr.SHA1}, 3, true, false, 0, 0, 0, false},
		{"tpm2-tss/test/data/fapi/eventlog/binary_measurements_hcrtm.bin", FormatCryptoAgile, []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SM3256}, 4, false, true, 0, 0, 0, false},
		{"go-attestation/attest/testdata/option_rom_eventlog", FormatSHA1, []pcr.Bank{pcr.SHA1}, 0, false, false, 1, 0, 0, false},
		{"tpm_futurepcr/tests/fixtures/ACTUAL_SYSTEMS/HP_Compaq_TPM1.2_UEFI_SB_Windows.log", FormatSHA1, []pcr.Bank{pcr.SHA1}, 0, false, false, 1, 0, 0, true},
		{"tpm2-tools/test/integration/fixtures/specid-vendordata.bin", FormatCryptoAgile, []pcr.Bank{pcr.SHA1, pcr.SHA256}, 0, false, false, 0, 0, 0, false},
		{"go-eventlog/testdata/eventlogs/ccel/cos-113-intel-tdx.bin", FormatCryptoAgile, []pcr.Bank{pcr.SHA384}, 0, false, false, 0, -1, 0xff, false},
		{"tpm2-tools/test/integration/fixtures/event-uefivar.bin", FormatCryptoAgile, []pcr.Bank{pcr.SHA1, pcr.SHA256}, 0, false, false, 0, 0, 0, false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var raw []byte
			if tc.extra {
				raw = testfixture.ReadExtra(t, "public/"+tc.file)
			} else {
				raw = readPublic(t, tc.file)
			}
			l, err := ReadLog(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			_, info, err := l.Replay()
			if err != nil {
				t.Fatal(err)
			}
			if l.Format != tc.format || info.Format != tc.format {
				t.Errorf("format %v/%v, want %v", l.Format, info.Format, tc.format)
			}
			if !equalBanks(info.Banks, tc.banks) {
				t.Errorf("banks %v, want %v", info.Banks, tc.banks)
			}
			if info.InitialPCR0 != tc.initPCR0 || info.StartupLocality != tc.locality || info.HCRTM != tc.hcrtm {
				t.Errorf("PCR0 init %d locality %v hcrtm %v, want %d %v %v", info.InitialPCR0, info.StartupLocality, info.HCRTM,
					tc.initPCR0, tc.locality, tc.hcrtm)
			}
			if l.SpecID != nil && tc.file == "tpm2-tools/test/integration/fixtures/specid-vendordata.bin" &&
				(l.SpecID.VendorInfoOutside != 4 || string(l.SpecID.VendorInfo) != "\xde\xad\xbe\xef") {
				t.Errorf("vendorInfo %x (outside %d), want deadbeef (4)", l.SpecID.VendorInfo, l.SpecID.VendorInfoOutside)
			}
			if info.PCRNone != tc.pcrNone {
				t.Errorf("PCR -1 events %d, want %d", info.PCRNone, tc.pcrNone)
			}
			if tc.filler >= 0 && info.Filler != tc.filler || tc.filler < 0 && info.Filler == 0 || info.FillerByte != tc.fillerByte {
				t.Errorf("filler %d×%#x, want %d×%#x", info.Filler, info.FillerByte, tc.filler, tc.fillerByte)
			}
		})
	}
}

func equalBanks(a, b []pcr.Bank) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEBSMissing: go-attestation's ebs_event_missing_eventlog comes from a
// firmware that forgot the ExitBootServices events in PCR 5 (MANIFEST.md rule
// 5). Replay must not invent them; appending the two EV_EFI_ACTION events
// (digest = SHA-1 of the action string) reproduces the TPM's PCR 5, asserted
// by go-attestation's TestEBSVerifyWorkaround.
func TestEBSMissing(t *testing.T) {
	l, err := ReadLog(bytes.NewReader(readPublic(t, "go-attestation/attest/testdata/ebs_event_missing_eventlog")))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		E struct {
			PCRs map[string]map[string]string `json:"expected_pcrs"`
		} `json:"ebs_event_missing_eventlog"`
	}
	raw := readPublic(t, "go-attestation/EXPECTED.json")
	if err := jsonUnmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, exp.E.PCRs["sha1"]["5"])
	got, _, err := l.Replay()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got.Get(pcr.SHA1, 5); bytes.Equal(v, want) {
		t.Fatalf("naive replay already gives the TPM's PCR 5")
	}
	evs := l.Events
	for _, s := range []string{"Exit Boot Services Invocation", "Exit Boot Services Returned with Success"} {
		d := sha1.Sum([]byte(s))
		evs = append(evs, &Event{PCR: 5, Type: EV_EFI_ACTION, Digests: []Digest{{pcr.SHA1, d[:]}}, Data: []byte(s)})
	}
	got, _, err = Replay(evs)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got.Get(pcr.SHA1, 5); !bytes.Equal(v, want) {
		t.Errorf("PCR 5 with the ExitBootServices events = %x, want %x", v, want)
	}
}

// TestTPM2Eventlog runs the installed tpm2_eventlog (tpm2-tools 5.4) on the
// real-kernel logs and compares its replayed PCRs with ours. These logs have
// no StartupLocality, H-CRTM or SP800-155 events, where 5.4 is known wrong.
func TestTPM2Eventlog(t *testing.T) {
	testenv.SkipShort(t)
	tool := testenv.Tool(t, "tpm2_eventlog")
	logs := testfixture.Glob(t, "realkernel/*/binary_bios_measurements")
	for _, p := range logs {
		t.Run(filepath.Base(filepath.Dir(p)), func(t *testing.T) {
			out, err := exec.Command(tool, p).Output()
			if err != nil {
				t.Fatalf("tpm2_eventlog: %v", err)
			}
			theirs := parseYAMLPCRs(t, out, true)
			l, err := ReadLog(bytes.NewReader(readFile(t, p)))
			if err != nil {
				t.Fatal(err)
			}
			ours, info, err := l.Replay()
			if err != nil {
				t.Fatal(err)
			}
			if info.StartupLocality || info.HCRTM {
				testenv.Env(t, testenv.ToolVersion, "tpm2_eventlog 5.4 mishandles StartupLocality/H-CRTM")
			}
			n := 0
			for _, b := range theirs.Banks() {
				for _, i := range theirs.Indexes(b) {
					if v, _ := ours.Get(b, i); !bytes.Equal(v, theirs[b][i]) {
						t.Errorf("%s PCR %d: ours %x, tpm2_eventlog %x", b, i, v, theirs[b][i])
					}
					n++
				}
				if len(theirs.Indexes(b)) != len(ours.Indexes(b)) {
					t.Errorf("%s: tpm2_eventlog lists PCRs %v, we %v", b, theirs.Indexes(b), ours.Indexes(b))
				}
			}
			if n == 0 {
				t.Fatal("tpm2_eventlog printed no PCRs")
			}
		})
	}
}

// TestReaderAPI checks the streaming contract: offsets, sticky errors,
// io.EOF, and that Next and All agree with ReadLog.
func TestReaderAPI(t *testing.T) {
	raw := readPublic(t, "tpm2-tools/test/integration/fixtures/event-arch-linux.bin")
	r := NewReader(bytes.NewReader(raw))
	var prev int64
	n := 0
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Offset != prev || e.Seq != n {
			t.Errorf("event %d: offset %d seq %d, want %d %d", n, e.Offset, e.Seq, prev, n)
		}
		prev = r.Offset()
		n++
	}
	if r.Offset() != int64(len(raw)) || n != 25 {
		t.Errorf("offset %d events %d, want %d 25", r.Offset(), n, len(raw))
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after EOF: %v", err)
	}
	if r.Format() != FormatCryptoAgile || r.SpecID() == nil || len(r.SpecID().Algorithms) != 2 {
		t.Errorf("format %v spec %+v", r.Format(), r.SpecID())
	}

	// Truncations: every cut inside a record is ErrUnexpectedEOF with the
	// record's offset; the error is sticky.
	l, _ := ReadLog(bytes.NewReader(raw))
	for _, cut := range []int{1, 7, 8, 20, int(l.Events[1].Offset) + 9, len(raw) - 1} {
		r := NewReader(bytes.NewReader(raw[:cut]))
		var err error
		for err == nil {
			_, err = r.Next()
		}
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut %d: %v", cut, err)
			continue
		}
		if fe.Offset > int64(cut) || fe.Offset < 0 {
			t.Errorf("cut %d: error offset %d", cut, fe.Offset)
		}
		if _, err2 := r.Next(); err2 != err {
			t.Errorf("cut %d: error not sticky: %v then %v", cut, err, err2)
		}
	}

	// Empty input: no records.
	if _, err := NewReader(bytes.NewReader(nil)).Next(); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
}

// TestLimits feeds hand-made records that break each bound.
func TestLimits(t *testing.T) {
	le := binary.LittleEndian
	sha1Rec := func(pcrIdx, typ uint32, size uint32, data []byte) []byte {
		b := le.AppendUint32(nil, pcrIdx)
		b = le.AppendUint32(b, typ)
		b = append(b, make([]byte, 20)...)
		b = le.AppendUint32(b, size)
		return append(b, data...)
	}
	spec := func(n uint32, algs ...uint16) []byte {
		b := []byte(SpecIDSignature)
		b = le.AppendUint32(b, 0)
		b = append(b, 0, 2, 0, 2)
		b = le.AppendUint32(b, n)
		for i := 0; i+1 < len(algs); i += 2 {
			b = le.AppendUint16(b, algs[i])
			b = le.AppendUint16(b, algs[i+1])
		}
		return append(b, 0)
	}
	head := func(s []byte) []byte { return sha1Rec(0, uint32(EV_NO_ACTION), uint32(len(s)), s) }
	agile := func(pcrIdx, typ, count uint32, rest ...byte) []byte {
		b := le.AppendUint32(nil, pcrIdx)
		b = le.AppendUint32(b, typ)
		b = le.AppendUint32(b, count)
		return append(b, rest...)
	}
	cat := func(p ...[]byte) []byte { return bytes.Join(p, nil) }
	for _, tc := range []struct {
		name  string
		in    []byte
		field string
	}{
		{"event size", sha1Rec(0, 1, MaxEventSize+1, nil), "eventSize"},
		{"numberOfAlgorithms", head(spec(MaxDigests + 1)), "specID"},
		{"wrong sha256 size", head(spec(1, 0x0b, 20)), "specID"},
		{"duplicate alg", head(spec(2, 0x0b, 32, 0x0b, 32)), "specID"},
		{"digestCount", cat(head(spec(1, 0x0b, 32)), agile(0, 1, MaxDigests+1)), "digestCount"},
		{"alg not in table", cat(head(spec(1, 0x0b, 32)), agile(0, 1, 1, 0x04, 0)), "hashAlg"},
		{"agile event size", cat(head(spec(1, 0x0b, 32)), agile(0, 1, 1, append([]byte{0x0b, 0}, append(make([]byte, 32), 0xff, 0xff, 0xff, 0x7f)...)...)), "eventSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadLog(bytes.NewReader(tc.in))
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v, want FormatError in %s", err, tc.field)
			}
		})
	}
}

// TestReplayRules exercises the replay rules on a hand-made crypto-agile log
// whose expected values are computed here with crypto/sha256 directly.
func TestReplayRules(t *testing.T) {
	sum := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	ext := func(old, d []byte) []byte { h := sha256.Sum256(append(bytes.Clone(old), d...)); return h[:] }
	ev := func(idx uint32, typ EventType, d []byte, data string) *Event {
		return &Event{PCR: idx, Type: typ, Digests: []Digest{{pcr.SHA256, d}, {0x0027, make([]byte, 32)}}, Data: []byte(data)}
	}
	specData := append([]byte(SpecIDSignature), 0, 0, 0, 0, 0, 2, 0, 2, 2, 0, 0, 0, 0x0b, 0, 32, 0, 0x27, 0, 32, 0, 0)
	head := &Event{PCR: 0, Type: EV_NO_ACTION, Digests: []Digest{{pcr.SHA1, make([]byte, 20)}}, Data: specData}
	loc := ev(0, EV_NO_ACTION, make([]byte, 32), "StartupLocality\x00\x03")
	a, b, c := sum("a"), sum("b"), sum("c")
	zero := make([]byte, 32)
	ff := bytes.Repeat([]byte{0xff}, 32)
	pcr0L := func(l byte) []byte { v := make([]byte, 32); v[31] = l; return v }

	for _, tc := range []struct {
		name   string
		events []*Event
		want   map[int][]byte
		init0  uint8
	}{
		{"plain", []*Event{head, ev(0, EV_POST_CODE, a, ""), ev(4, EV_SEPARATOR, b, "")},
			map[int][]byte{0: ext(zero, a), 4: ext(zero, b)}, 0},
		{"no events: PCR0 only", []*Event{head}, map[int][]byte{0: zero}, 0},
		{"no-action never extended", []*Event{head, ev(0, EV_NO_ACTION, a, "SP800-155 Event3"), ev(0, EV_POST_CODE, b, "")},
			map[int][]byte{0: ext(zero, b)}, 0},
		{"startup locality", []*Event{head, loc, ev(0, EV_POST_CODE, a, "")}, map[int][]byte{0: ext(pcr0L(3), a)}, 3},
		{"late locality ignored", []*Event{head, ev(0, EV_POST_CODE, a, ""), loc}, map[int][]byte{0: ext(zero, a)}, 0},
		{"hcrtm", []*Event{head, ev(0, EV_EFI_HCRTM_EVENT, a, "HCRTM"), ev(0, EV_POST_CODE, b, "")},
			map[int][]byte{0: ext(ext(pcr0L(4), a), b)}, 4},
		{"locality wins over hcrtm", []*Event{head, loc, ev(0, EV_EFI_HCRTM_EVENT, a, "HCRTM")},
			map[int][]byte{0: ext(pcr0L(3), a)}, 3},
		{"pcr17 starts at ff", []*Event{head, ev(17, EV_POST_CODE, a, "")}, map[int][]byte{0: zero, 17: ext(ff, a)}, 0},
		{"pcr -1 and out of range", []*Event{head, ev(PCRNone, EV_EFI_ACTION, a, ""), ev(30, EV_POST_CODE, a, ""), ev(7, EV_SEPARATOR, c, "")},
			map[int][]byte{0: zero, 7: ext(zero, c)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, info, err := Replay(tc.events)
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Unknown) != 1 || info.Unknown[0] != 0x0027 || len(info.Banks) != 1 {
				t.Errorf("banks %v unknown %v", info.Banks, info.Unknown)
			}
			if info.InitialPCR0 != tc.init0 {
				t.Errorf("initial PCR0 %d, want %d", info.InitialPCR0, tc.init0)
			}
			if len(got) != 1 || len(got[pcr.SHA256]) != len(tc.want) {
				t.Errorf("got PCRs %v, want %d", got.Indexes(pcr.SHA256), len(tc.want))
			}
			for i, w := range tc.want {
				if v, _ := got.Get(pcr.SHA256, i); !bytes.Equal(v, w) {
					t.Errorf("PCR %d = %x, want %x", i, v, w)
				}
			}
		})
	}

	// The same events written out with Append read back unchanged, the
	// unknown algorithm 0x0027 (sha3_256) parsed by the Spec ID table's size.
	evs := []*Event{head, loc, ev(0, EV_EFI_HCRTM_EVENT, a, "HCRTM"), ev(PCRNone, EV_NO_ACTION, b, "WBCL"), ev(7, EV_SEPARATOR, c, "\x00\x00\x00\x00")}
	raw := head.Append(nil, FormatSHA1)
	for _, e := range evs[1:] {
		raw = e.Append(raw, FormatCryptoAgile)
	}
	l, err := ReadLog(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if l.Format != FormatCryptoAgile || len(l.Events) != len(evs) || len(l.SpecID.Algorithms) != 2 {
		t.Fatalf("read back %v %d events %+v", l.Format, len(l.Events), l.SpecID)
	}
	for i, e := range l.Events {
		w := evs[i]
		if e.PCR != w.PCR || e.Type != w.Type || !bytes.Equal(e.Data, w.Data) || len(e.Digests) != len(w.Digests) {
			t.Fatalf("event %d: %+v, want %+v", i, e, w)
		}
		for j := range e.Digests {
			if e.Digests[j].Bank != w.Digests[j].Bank || !bytes.Equal(e.Digests[j].Sum, w.Digests[j].Sum) {
				t.Errorf("event %d digest %d differs", i, j)
			}
		}
	}
	_, info, err := l.Replay()
	if err != nil || len(info.Unknown) != 1 || info.Unknown[0] != 0x0027 || info.InitialPCR0 != 3 || info.PCRNone != 1 {
		t.Errorf("replay info %+v, %v", info, err)
	}

	// A bank some event has no digest for is left out and reported.
	bad := []*Event{head, {PCR: 1, Type: EV_POST_CODE, Digests: []Digest{{0x0027, zero}}}}
	got, info, err := Replay(bad)
	if err != nil || len(got) != 0 || len(info.Banks) != 0 || len(info.Incomplete) != 1 || info.Incomplete[0] != pcr.SHA256 {
		t.Errorf("missing sha256 digest: %v %v %+v", got, err, info)
	}
	// A digest of the wrong size is an error.
	bad = []*Event{head, {PCR: 1, Type: EV_POST_CODE, Digests: []Digest{{pcr.SHA256, zero[:20]}}}}
	if _, _, err := Replay(bad); err == nil {
		t.Error("short sha256 digest: no error")
	}
}

func TestEventTypeString(t *testing.T) {
	for typ, want := range map[EventType]string{
		EV_NO_ACTION: "EV_NO_ACTION", EV_EFI_HCRTM_EVENT: "EV_EFI_HCRTM_EVENT", 0x1234: "EV_0x00001234",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%#x: %q, want %q", uint32(typ), got, want)
		}
	}
}

// The largest crypto-agile log of the corpus (162 events, sha1+sha256).
const benchLog = "ima-evm-utils/tests/sample-binary_bios_measurements-pcrs-8-9"

func BenchmarkReader(b *testing.B) {
	raw := readPublic(b, benchLog)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := ReadLog(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReplay(b *testing.B) {
	raw := readPublic(b, benchLog)
	l, err := ReadLog(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, _, err := l.Replay(); err != nil {
			b.Fatal(err)
		}
	}
}
