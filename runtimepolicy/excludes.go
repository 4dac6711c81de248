package runtimepolicy

import (
	"fmt"
	"regexp"
	"strings"
)

// ExcludeError names an exclude pattern that cannot be used, and why.
// Keylime compiles its excludes with Python's re; a pattern Go's regexp
// (RE2 syntax) cannot compile (look-around, back-references, possessive
// quantifiers, \Z) is refused here. Keylime itself logs such a list at
// verification time and then ignores every exclude in it.
type ExcludeError struct {
	Index   int
	Pattern string
	Err     error
}

func (e *ExcludeError) Error() string {
	return fmt.Sprintf("runtimepolicy: excludes[%d] %q cannot be compiled (Go's RE2 syntax; Keylime would silently drop the whole exclude list): %v",
		e.Index, e.Pattern, e.Err)
}

func (e *ExcludeError) Unwrap() error { return e.Err }

// Excludes is a compiled exclude list: a path is excluded when one pattern
// matches at its start, as Keylime's re.match on "(p1)|(p2)|..." does (a
// pattern matches a prefix unless it ends in $).
type Excludes struct {
	re       *regexp.Regexp
	patterns []string
}

// CompileExcludes compiles patterns, each on its own (so that an error names
// it) and then joined. An empty list excludes nothing.
func CompileExcludes(patterns []string) (*Excludes, error) {
	x := &Excludes{patterns: patterns}
	if len(patterns) == 0 {
		return x, nil
	}
	var b strings.Builder
	b.WriteString(`^(?:`)
	for i, p := range patterns {
		if _, err := regexp.Compile(p); err != nil {
			return nil, &ExcludeError{Index: i, Pattern: p, Err: err}
		}
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString("(?:")
		b.WriteString(p)
		b.WriteString(")")
	}
	b.WriteString(")")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, &ExcludeError{Index: -1, Pattern: b.String(), Err: err}
	}
	x.re = re
	return x, nil
}

// Match reports whether path is excluded.
func (x *Excludes) Match(path []byte) bool {
	return x != nil && x.re != nil && x.re.Match(path)
}

// Patterns returns the patterns as given.
func (x *Excludes) Patterns() []string {
	if x == nil {
		return nil
	}
	return x.patterns
}
