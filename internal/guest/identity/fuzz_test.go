package identity

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecode feeds Decode arbitrary params: it never panics, every
// refusal is an *InvalidError naming a field, and what it accepts passes
// Validate again after a JSON round trip.
func FuzzDecode(f *testing.F) {
	b, err := json.Marshal(full())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"time_unix_nano":1}`))
	f.Add([]byte(`{"time_unix_nano":1,"net":{"address":"10.0.0.2/8","gateway":"10.0.0.1","mac":"02:00:00:00:00:01"}}`))
	f.Add([]byte(`{"time_unix_nano":1,"boot_id":"01234567-89ab-cdef-0123-456789abcdef","machine_id":"0123456789abcdef0123456789abcdef"}`))
	f.Fuzz(func(t *testing.T, params []byte) {
		id, err := Decode(params)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field == "" {
				t.Fatalf("Decode(%q): %v is not an *InvalidError naming a field", params, err)
			}
			return
		}
		again, err := json.Marshal(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("Decode accepted %q but refuses its round trip %q: %v", params, again, err)
		}
	})
}
