package ima

import (
	"fmt"
	"strings"
)

// Limits from ima-spec.md §1.4.
const (
	// MaxTemplateFields is IMA_TEMPLATE_NUM_FIELDS_MAX.
	MaxTemplateFields = 15
	// MaxFieldIDLen is the longest field id the kernel accepts in a format.
	MaxFieldIDLen = 16
	// MaxTemplateNameLen bounds the template name of a record. A custom
	// format is at most 15 ids of at most 16 characters joined by '|'
	// (15*16+14 = 254), so 255 covers every name the kernel can write.
	MaxTemplateNameLen = 255
	// MaxEventNameLen is IMA_EVENT_NAME_LEN_MAX, the longest legacy "n" name.
	MaxEventNameLen = 255
)

// Field ids (ima-spec.md §3.2).
const (
	FieldD            = "d"
	FieldN            = "n"
	FieldDNG          = "d-ng"
	FieldDNGv2        = "d-ngv2"
	FieldNNG          = "n-ng"
	FieldSig          = "sig"
	FieldBuf          = "buf"
	FieldDModsig      = "d-modsig"
	FieldModsig       = "modsig"
	FieldEVMSig       = "evmsig"
	FieldIUID         = "iuid"
	FieldIGID         = "igid"
	FieldIMode        = "imode"
	FieldXattrNames   = "xattrnames"
	FieldXattrLengths = "xattrlengths"
	FieldXattrValues  = "xattrvalues"
)

// fieldIDs interns the 16 known ids; Template.Fields use these strings, so
// decoded Field.ID values never allocate.
var fieldIDs = []string{
	FieldD, FieldN, FieldDNG, FieldDNGv2, FieldNNG, FieldSig, FieldBuf,
	FieldDModsig, FieldModsig, FieldEVMSig, FieldIUID, FieldIGID, FieldIMode,
	FieldXattrNames, FieldXattrLengths, FieldXattrValues,
}

func internFieldID(s string) (string, bool) {
	for _, id := range fieldIDs {
		if id == s {
			return id, true
		}
	}
	return "", false
}

// Template is a template descriptor (ima-spec.md §3.1): the name written in
// the list and the ordered field ids. For a custom format the name is the
// format string itself.
type Template struct {
	Name   string
	Fields []string
	// Custom is true for a format that is not a built-in descriptor.
	Custom bool
}

// Built-in template names (ima-spec.md §3.1).
const (
	TemplateIMA       = "ima"
	TemplateIMANG     = "ima-ng"
	TemplateIMANGv2   = "ima-ngv2"
	TemplateIMASig    = "ima-sig"
	TemplateIMASigv2  = "ima-sigv2"
	TemplateIMABuf    = "ima-buf"
	TemplateIMAModsig = "ima-modsig"
	TemplateEVMSig    = "evm-sig"
)

var builtinTemplates = []*Template{
	{Name: TemplateIMA, Fields: []string{FieldD, FieldN}},
	{Name: TemplateIMANG, Fields: []string{FieldDNG, FieldNNG}},
	{Name: TemplateIMASig, Fields: []string{FieldDNG, FieldNNG, FieldSig}},
	{Name: TemplateIMANGv2, Fields: []string{FieldDNGv2, FieldNNG}},
	{Name: TemplateIMASigv2, Fields: []string{FieldDNGv2, FieldNNG, FieldSig}},
	{Name: TemplateIMABuf, Fields: []string{FieldDNG, FieldNNG, FieldBuf}},
	{Name: TemplateIMAModsig, Fields: []string{FieldDNG, FieldNNG, FieldSig, FieldDModsig, FieldModsig}},
	{Name: TemplateEVMSig, Fields: []string{FieldDNG, FieldNNG, FieldEVMSig, FieldXattrNames,
		FieldXattrLengths, FieldXattrValues, FieldIUID, FieldIGID, FieldIMode}},
}

// BuiltinTemplates returns the mainline descriptors of ima-spec.md §3.1.
func BuiltinTemplates() []*Template { return builtinTemplates }

func builtinTemplate(name []byte) *Template {
	for _, t := range builtinTemplates {
		if t.Name == string(name) {
			return t
		}
	}
	return nil
}

// Format returns the template's field ids joined by '|', the form
// ima_template_fmt= takes.
func (t *Template) Format() string { return strings.Join(t.Fields, "|") }

// LookupBuiltinTemplate finds a built-in descriptor by its name or by its
// format, as the kernel's lookup_template_desc does for template= in a
// policy rule and for ima_template= (ima-spec.md §3.1).
func LookupBuiltinTemplate(s string) (*Template, bool) {
	for _, t := range builtinTemplates {
		if t.Name == s || t.Format() == s {
			return t, true
		}
	}
	return nil, false
}

// LookupTemplate returns the descriptor for a template name as written in a
// list: a built-in name, or a custom format string ("d-ng|n-ng|iuid") made
// only of known field ids (at most 15, each at most 16 characters). Anything
// else is an error wrapping ErrUnknownTemplate.
func LookupTemplate(name string) (*Template, error) {
	if t := builtinTemplate([]byte(name)); t != nil {
		return t, nil
	}
	return ParseTemplateFormat(name)
}

// ParseTemplateFormat parses a custom format string (ima_template_fmt=,
// ima-spec.md §3.1): '|'-separated known field ids.
func ParseTemplateFormat(format string) (*Template, error) {
	if format == "" || len(format) > MaxTemplateNameLen {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTemplate, format)
	}
	parts := strings.Split(format, "|")
	if len(parts) > MaxTemplateFields {
		return nil, fmt.Errorf("%w: %q has %d fields, more than %d", ErrUnknownTemplate, format, len(parts), MaxTemplateFields)
	}
	ids := make([]string, len(parts))
	for i, p := range parts {
		if len(p) > MaxFieldIDLen {
			return nil, fmt.Errorf("%w: %q: field id %q longer than %d", ErrUnknownTemplate, format, p, MaxFieldIDLen)
		}
		id, ok := internFieldID(p)
		if !ok {
			return nil, fmt.Errorf("%w: %q: unknown field id %q", ErrUnknownTemplate, format, p)
		}
		ids[i] = id
	}
	return &Template{Name: format, Fields: ids, Custom: true}, nil
}

// IsLegacy reports whether the template is the legacy "ima" descriptor, whose
// record and hash input have their own layout (ima-spec.md §2.3, §4.1).
func (t *Template) IsLegacy() bool { return t.Name == TemplateIMA && !t.Custom }

// templateCache maps names to descriptors for a reader: built-ins first, then
// up to maxCachedTemplates custom formats.
type templateCache struct {
	custom map[string]*Template
}

const maxCachedTemplates = 64

func (c *templateCache) lookup(name []byte) (*Template, error) {
	if t := builtinTemplate(name); t != nil {
		return t, nil
	}
	if t, ok := c.custom[string(name)]; ok {
		return t, nil
	}
	t, err := ParseTemplateFormat(string(name))
	if err != nil {
		return nil, err
	}
	if c.custom == nil {
		c.custom = make(map[string]*Template)
	}
	if len(c.custom) < maxCachedTemplates {
		c.custom[t.Name] = t
	}
	return t, nil
}
