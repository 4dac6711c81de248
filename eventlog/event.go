package eventlog

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/imago-ima/imago/pcr"
)

// EventType is a TCG event type (TCG PC Client Platform Firmware Profile
// (PFP) §10.4.1, "Event Types").
type EventType uint32

// Event types of the TCG PC Client PFP, §10.4.1.
const (
	EV_PREBOOT_CERT            EventType = 0x00000000
	EV_POST_CODE               EventType = 0x00000001
	EV_UNUSED                  EventType = 0x00000002
	EV_NO_ACTION               EventType = 0x00000003
	EV_SEPARATOR               EventType = 0x00000004
	EV_ACTION                  EventType = 0x00000005
	EV_EVENT_TAG               EventType = 0x00000006
	EV_S_CRTM_CONTENTS         EventType = 0x00000007
	EV_S_CRTM_VERSION          EventType = 0x00000008
	EV_CPU_MICROCODE           EventType = 0x00000009
	EV_PLATFORM_CONFIG_FLAGS   EventType = 0x0000000A
	EV_TABLE_OF_DEVICES        EventType = 0x0000000B
	EV_COMPACT_HASH            EventType = 0x0000000C
	EV_IPL                     EventType = 0x0000000D
	EV_IPL_PARTITION_DATA      EventType = 0x0000000E
	EV_NONHOST_CODE            EventType = 0x0000000F
	EV_NONHOST_CONFIG          EventType = 0x00000010
	EV_NONHOST_INFO            EventType = 0x00000011
	EV_OMIT_BOOT_DEVICE_EVENTS EventType = 0x00000012
	EV_POST_CODE2              EventType = 0x00000013

	EV_EFI_EVENT_BASE                EventType = 0x80000000
	EV_EFI_VARIABLE_DRIVER_CONFIG    EventType = 0x80000001
	EV_EFI_VARIABLE_BOOT             EventType = 0x80000002
	EV_EFI_BOOT_SERVICES_APPLICATION EventType = 0x80000003
	EV_EFI_BOOT_SERVICES_DRIVER      EventType = 0x80000004
	EV_EFI_RUNTIME_SERVICES_DRIVER   EventType = 0x80000005
	EV_EFI_GPT_EVENT                 EventType = 0x80000006
	EV_EFI_ACTION                    EventType = 0x80000007
	EV_EFI_PLATFORM_FIRMWARE_BLOB    EventType = 0x80000008
	EV_EFI_HANDOFF_TABLES            EventType = 0x80000009
	EV_EFI_PLATFORM_FIRMWARE_BLOB2   EventType = 0x8000000A
	EV_EFI_HANDOFF_TABLES2           EventType = 0x8000000B
	EV_EFI_VARIABLE_BOOT2            EventType = 0x8000000C
	EV_EFI_HCRTM_EVENT               EventType = 0x80000010
	EV_EFI_VARIABLE_AUTHORITY        EventType = 0x800000E0
	EV_EFI_SPDM_FIRMWARE_BLOB        EventType = 0x800000E1
	EV_EFI_SPDM_FIRMWARE_CONFIG      EventType = 0x800000E2
)

var eventTypeNames = map[EventType]string{
	EV_PREBOOT_CERT:                  "EV_PREBOOT_CERT",
	EV_POST_CODE:                     "EV_POST_CODE",
	EV_UNUSED:                        "EV_UNUSED",
	EV_NO_ACTION:                     "EV_NO_ACTION",
	EV_SEPARATOR:                     "EV_SEPARATOR",
	EV_ACTION:                        "EV_ACTION",
	EV_EVENT_TAG:                     "EV_EVENT_TAG",
	EV_S_CRTM_CONTENTS:               "EV_S_CRTM_CONTENTS",
	EV_S_CRTM_VERSION:                "EV_S_CRTM_VERSION",
	EV_CPU_MICROCODE:                 "EV_CPU_MICROCODE",
	EV_PLATFORM_CONFIG_FLAGS:         "EV_PLATFORM_CONFIG_FLAGS",
	EV_TABLE_OF_DEVICES:              "EV_TABLE_OF_DEVICES",
	EV_COMPACT_HASH:                  "EV_COMPACT_HASH",
	EV_IPL:                           "EV_IPL",
	EV_IPL_PARTITION_DATA:            "EV_IPL_PARTITION_DATA",
	EV_NONHOST_CODE:                  "EV_NONHOST_CODE",
	EV_NONHOST_CONFIG:                "EV_NONHOST_CONFIG",
	EV_NONHOST_INFO:                  "EV_NONHOST_INFO",
	EV_OMIT_BOOT_DEVICE_EVENTS:       "EV_OMIT_BOOT_DEVICE_EVENTS",
	EV_POST_CODE2:                    "EV_POST_CODE2",
	EV_EFI_EVENT_BASE:                "EV_EFI_EVENT_BASE",
	EV_EFI_VARIABLE_DRIVER_CONFIG:    "EV_EFI_VARIABLE_DRIVER_CONFIG",
	EV_EFI_VARIABLE_BOOT:             "EV_EFI_VARIABLE_BOOT",
	EV_EFI_BOOT_SERVICES_APPLICATION: "EV_EFI_BOOT_SERVICES_APPLICATION",
	EV_EFI_BOOT_SERVICES_DRIVER:      "EV_EFI_BOOT_SERVICES_DRIVER",
	EV_EFI_RUNTIME_SERVICES_DRIVER:   "EV_EFI_RUNTIME_SERVICES_DRIVER",
	EV_EFI_GPT_EVENT:                 "EV_EFI_GPT_EVENT",
	EV_EFI_ACTION:                    "EV_EFI_ACTION",
	EV_EFI_PLATFORM_FIRMWARE_BLOB:    "EV_EFI_PLATFORM_FIRMWARE_BLOB",
	EV_EFI_HANDOFF_TABLES:            "EV_EFI_HANDOFF_TABLES",
	EV_EFI_PLATFORM_FIRMWARE_BLOB2:   "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
	EV_EFI_HANDOFF_TABLES2:           "EV_EFI_HANDOFF_TABLES2",
	EV_EFI_VARIABLE_BOOT2:            "EV_EFI_VARIABLE_BOOT2",
	EV_EFI_HCRTM_EVENT:               "EV_EFI_HCRTM_EVENT",
	EV_EFI_VARIABLE_AUTHORITY:        "EV_EFI_VARIABLE_AUTHORITY",
	EV_EFI_SPDM_FIRMWARE_BLOB:        "EV_EFI_SPDM_FIRMWARE_BLOB",
	EV_EFI_SPDM_FIRMWARE_CONFIG:      "EV_EFI_SPDM_FIRMWARE_CONFIG",
}

// String returns the TCG name (EV_SEPARATOR) or EV_0x<hex> for a type the PFP
// does not name.
func (t EventType) String() string {
	if s, ok := eventTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("EV_0x%08x", uint32(t))
}

// PCRNone is the PCR index 0xFFFFFFFF ("PCR -1") that Windows boot managers
// use for EV_NO_ACTION information events. Such events are parsed and never
// extended.
const PCRNone uint32 = 0xFFFFFFFF

// Digest is one digest of an event: the TPM_ALG_ID of its bank and the
// digest bytes. Bank may be an algorithm imago cannot compute
// (pcr.Bank.Known() false); its digest is kept as read.
type Digest struct {
	Bank pcr.Bank
	Sum  []byte
}

// Event is one record of a TCG event log: a TCG_PCR_EVENT (SHA-1 format, and
// the first record of every log) or a TCG_PCR_EVENT2 (crypto-agile format)
// (ima-spec.md §11; TCG PC Client PFP §10.2.1-10.2.2).
type Event struct {
	// Seq is the record's position in the log, 0 for the first record.
	Seq int
	// Offset is the byte offset of the record in the log.
	Offset int64
	// PCR is the pcrIndex field as read (PCRNone for "PCR -1").
	PCR uint32
	// Type is the eventType field.
	Type EventType
	// Digests holds the record's digests in log order: one SHA-1 digest for a
	// TCG_PCR_EVENT, digestCount entries for a TCG_PCR_EVENT2.
	Digests []Digest
	// Data is the event data (eventSize bytes).
	Data []byte
}

// Digest returns the event's digest for bank b.
func (e *Event) Digest(b pcr.Bank) ([]byte, bool) {
	for _, d := range e.Digests {
		if d.Bank == b {
			return d.Sum, true
		}
	}
	return nil, false
}

// startupLocalitySignature is the signature of the TCG_EfiStartupLocalityEvent
// (TCG PC Client PFP §10.4.5.3): "StartupLocality\0" followed by one byte,
// the locality TPM2_Startup was issued from.
var startupLocalitySignature = []byte("StartupLocality\x00")

// StartupLocality reports whether e is an EV_NO_ACTION StartupLocality event
// in PCR 0 and returns the locality it carries.
func (e *Event) StartupLocality() (uint8, bool) {
	if e.Type != EV_NO_ACTION || e.PCR != 0 || len(e.Data) != len(startupLocalitySignature)+1 ||
		!bytes.HasPrefix(e.Data, startupLocalitySignature) {
		return 0, false
	}
	return e.Data[len(e.Data)-1], true
}

// Append appends the record's bytes in format f to b: a TCG_PCR_EVENT for
// FormatSHA1 (the first digest, which must be 20 bytes), a TCG_PCR_EVENT2 for
// FormatCryptoAgile (every digest in order). Reading the result gives e back.
// The first record of a crypto-agile log is a TCG_PCR_EVENT: append it with
// FormatSHA1.
func (e *Event) Append(b []byte, f Format) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, e.PCR)
	b = le.AppendUint32(b, uint32(e.Type))
	if f == FormatCryptoAgile {
		b = le.AppendUint32(b, uint32(len(e.Digests)))
		for _, d := range e.Digests {
			b = le.AppendUint16(b, uint16(d.Bank))
			b = append(b, d.Sum...)
		}
	} else {
		var d [20]byte
		if len(e.Digests) > 0 {
			copy(d[:], e.Digests[0].Sum)
		}
		b = append(b, d[:]...)
	}
	b = le.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...)
}
