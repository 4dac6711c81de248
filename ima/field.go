package ima

// Field is one template field: its id from the template format ("d-ng",
// "n-ng", "sig", ...) and its raw bytes as stored in the template data,
// without the length prefix (ima-spec.md §3.3).
type Field struct {
	ID   string
	Data []byte
}
