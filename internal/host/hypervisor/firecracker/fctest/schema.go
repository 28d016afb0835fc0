package fctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The request bodies as Firecracker decodes them: serde structs from
// src/vmm/src/vmm_config/*.rs (and the logger's and the API server's),
// most with #[serde(deny_unknown_fields)], read at the release tags for
// the fields that came and went. A field that is not an Option and has no
// serde default is required; a field of a release after the server's
// Version is unknown to it.

type kind int

const (
	kString kind = iota
	kBool
	kUint
	kObject
	kArray
	kMap // string to string
)

type field struct {
	name     string
	kind     kind
	required bool
	// max is the largest value of a kUint (255 for u8).
	max uint64
	// enum lists the values of a string enum; fold compares them
	// without case (Firecracker's logger level).
	enum []string
	fold bool
	// obj is the schema of a kObject, or of a kArray's elements when
	// they are objects.
	obj *schema
	// since and until bound the releases that have the field: since is
	// the first, until the first without it; zero means unbounded.
	since, until version
	// backports are patch releases of older minor releases that got the
	// field too: each has it, and so do the later patches of its minor.
	backports []version
}

type schema struct {
	name   string // the Rust type, for messages
	fields []field
	// denyUnknown is serde's deny_unknown_fields: unknown fields are
	// errors rather than ignored.
	denyUnknown bool
}

func (f field) in(v version) bool {
	for _, b := range f.backports {
		if v.major == b.major && v.minor == b.minor && !v.less(b) {
			return true
		}
	}
	if !f.since.zero() && v.less(f.since) {
		return false
	}
	if !f.until.zero() && !v.less(f.until) {
		return false
	}
	return true
}

// decodeObject parses body as one JSON object, keeping numbers exact.
func decodeObject(body []byte, s *schema) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing characters")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("invalid type: %s, expected struct %s", describe(v), s.name)
	}
	return m, nil
}

// check validates obj against s for release v, as serde would.
func (s *schema) check(obj map[string]any, v version) error {
	known := map[string]field{}
	var names []string
	for _, f := range s.fields {
		if f.in(v) {
			known[f.name] = f
			names = append(names, "`"+f.name+"`")
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := known[k]
		if !ok {
			if s.denyUnknown {
				return fmt.Errorf("unknown field `%s`, expected one of %s", k, strings.Join(names, ", "))
			}
			continue
		}
		if err := f.checkValue(obj[k], v); err != nil {
			return err
		}
	}
	for _, f := range s.fields {
		if !f.in(v) || !f.required {
			continue
		}
		if _, ok := obj[f.name]; !ok {
			return fmt.Errorf("missing field `%s`", f.name)
		}
	}
	return nil
}

func (f field) checkValue(val any, v version) error {
	if val == nil {
		if f.required {
			return fmt.Errorf("invalid type: null, expected %s", f.expected())
		}
		return nil // Option<T>: null is None
	}
	switch f.kind {
	case kString:
		s, ok := val.(string)
		if !ok {
			return fmt.Errorf("invalid type: %s, expected %s", describe(val), f.expected())
		}
		if len(f.enum) > 0 {
			for _, e := range f.enum {
				if s == e || (f.fold && strings.EqualFold(s, e)) {
					return nil
				}
			}
			quoted := make([]string, len(f.enum))
			for i, e := range f.enum {
				quoted[i] = "`" + e + "`"
			}
			return fmt.Errorf("unknown variant `%s`, expected one of %s", s, strings.Join(quoted, ", "))
		}
	case kBool:
		if _, ok := val.(bool); !ok {
			return fmt.Errorf("invalid type: %s, expected a boolean", describe(val))
		}
	case kUint:
		n, ok := val.(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE") {
			return fmt.Errorf("invalid type: %s, expected %s", describe(val), f.expected())
		}
		u, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil || u > f.max {
			return fmt.Errorf("invalid value: integer `%s`, expected %s", n, f.expected())
		}
	case kObject:
		m, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("invalid type: %s, expected struct %s", describe(val), f.obj.name)
		}
		return f.obj.check(m, v)
	case kArray:
		a, ok := val.([]any)
		if !ok {
			return fmt.Errorf("invalid type: %s, expected a sequence", describe(val))
		}
		for _, e := range a {
			m, ok := e.(map[string]any)
			if !ok {
				return fmt.Errorf("invalid type: %s, expected struct %s", describe(e), f.obj.name)
			}
			if err := f.obj.check(m, v); err != nil {
				return err
			}
		}
	case kMap:
		m, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("invalid type: %s, expected a map", describe(val))
		}
		for _, e := range m {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("invalid type: %s, expected a string", describe(e))
			}
		}
	}
	return nil
}

func (f field) expected() string {
	switch f.kind {
	case kString:
		if len(f.enum) > 0 {
			return "an enum variant"
		}
		return "a string"
	case kBool:
		return "a boolean"
	case kUint:
		switch f.max {
		case 1<<8 - 1:
			return "u8"
		case 1<<16 - 1:
			return "u16"
		case 1<<32 - 1:
			return "u32"
		}
		return "u64"
	case kObject:
		return "struct " + f.obj.name
	case kArray:
		return "a sequence"
	}
	return "a map"
}

// describe names a JSON value as serde_json does in its errors.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean `%t`", v)
	case json.Number:
		if strings.ContainsAny(v.String(), ".eE") {
			return fmt.Sprintf("floating point `%s`", v)
		}
		return fmt.Sprintf("integer `%s`", v)
	case string:
		return fmt.Sprintf("string %q", v)
	case []any:
		return "sequence"
	case map[string]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

const (
	u8Max  = 1<<8 - 1
	u16Max = 1<<16 - 1
	u32Max = 1<<32 - 1
	u64Max = 1<<64 - 1
)

var (
	v1_4  = version{1, 4, 0, ""}
	v1_5  = version{1, 5, 0, ""}
	v1_6  = version{1, 6, 0, ""}
	v1_7  = version{1, 7, 0, ""}
	v1_12 = version{1, 12, 0, ""}
	v1_13 = version{1, 13, 0, ""}
	v1_14 = version{1, 14, 0, ""}
	v1_16 = version{1, 16, 0, ""}
	v1_17 = version{1, 17, 0, ""} // after the last release read: not yet released
)

var tokenBucketSchema = &schema{name: "TokenBucketConfig", fields: []field{
	{name: "size", kind: kUint, max: u64Max, required: true},
	{name: "one_time_burst", kind: kUint, max: u64Max},
	{name: "refill_time", kind: kUint, max: u64Max, required: true},
}}

var rateLimiterSchema = &schema{name: "RateLimiterConfig", denyUnknown: true, fields: []field{
	{name: "bandwidth", kind: kObject, obj: tokenBucketSchema},
	{name: "ops", kind: kObject, obj: tokenBucketSchema},
}}

var loggerSchemaOld = &schema{name: "LoggerConfig", denyUnknown: true, fields: []field{
	{name: "log_path", kind: kString, required: true},
	{name: "level", kind: kString, enum: []string{"Error", "Warning", "Info", "Debug"}, fold: true},
	{name: "show_level", kind: kBool},
	{name: "show_log_origin", kind: kBool},
}}

var loggerSchema = &schema{name: "LoggerConfig", denyUnknown: true, fields: []field{
	{name: "log_path", kind: kString},
	{name: "level", kind: kString, enum: []string{"Off", "Trace", "Debug", "Info", "Warn", "Warning", "Error"}, fold: true},
	{name: "show_level", kind: kBool},
	{name: "show_log_origin", kind: kBool},
	{name: "module", kind: kString, since: v1_6},
}}

// MetricsConfig ignores unknown fields.
var metricsSchema = &schema{name: "MetricsConfig", fields: []field{
	{name: "metrics_path", kind: kString, required: true},
	{name: "emit_id", kind: kBool, since: v1_17},
	{name: "properties", kind: kMap, since: v1_17},
}}

var machineConfigSchema = &schema{name: "MachineConfig", denyUnknown: true, fields: []field{
	{name: "vcpu_count", kind: kUint, max: u8Max, required: true},
	{name: "mem_size_mib", kind: kUint, max: u64Max, required: true},
	{name: "smt", kind: kBool},
	{name: "cpu_template", kind: kString, enum: []string{"C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"}},
	{name: "track_dirty_pages", kind: kBool},
	{name: "huge_pages", kind: kString, enum: []string{"None", "2M"}, since: v1_7},
}}

var bootSourceSchema = &schema{name: "BootSourceConfig", denyUnknown: true, fields: []field{
	{name: "kernel_image_path", kind: kString, required: true},
	{name: "initrd_path", kind: kString},
	{name: "boot_args", kind: kString},
}}

// driveSchemaOld is BlockDeviceConfig before vhost-user (v1.6.0), when
// path_on_host and is_read_only were required.
var driveSchemaOld = &schema{name: "BlockDeviceConfig", denyUnknown: true, fields: []field{
	{name: "drive_id", kind: kString, required: true},
	{name: "path_on_host", kind: kString, required: true},
	{name: "is_root_device", kind: kBool, required: true},
	{name: "partuuid", kind: kString},
	{name: "is_read_only", kind: kBool, required: true},
	{name: "cache_type", kind: kString, enum: []string{"Unsafe", "Writeback"}},
	{name: "rate_limiter", kind: kObject, obj: rateLimiterSchema},
	{name: "io_engine", kind: kString, enum: []string{"Sync", "Async"}},
}}

var driveSchema = &schema{name: "BlockDeviceConfig", denyUnknown: true, fields: []field{
	{name: "drive_id", kind: kString, required: true},
	{name: "partuuid", kind: kString},
	{name: "is_root_device", kind: kBool, required: true},
	{name: "cache_type", kind: kString, enum: []string{"Unsafe", "Writeback"}},
	{name: "is_read_only", kind: kBool},
	{name: "path_on_host", kind: kString},
	{name: "rate_limiter", kind: kObject, obj: rateLimiterSchema},
	{name: "io_engine", kind: kString, enum: []string{"Sync", "Async"}},
	{name: "socket", kind: kString},
}}

var netSchema = &schema{name: "NetworkInterfaceConfig", denyUnknown: true, fields: []field{
	{name: "iface_id", kind: kString, required: true},
	{name: "host_dev_name", kind: kString, required: true},
	{name: "guest_mac", kind: kString},
	{name: "mtu", kind: kUint, max: u16Max, since: v1_16},
	{name: "rx_rate_limiter", kind: kObject, obj: rateLimiterSchema},
	{name: "tx_rate_limiter", kind: kObject, obj: rateLimiterSchema},
}}

var vsockSchema = &schema{name: "VsockDeviceConfig", denyUnknown: true, fields: []field{
	{name: "vsock_id", kind: kString},
	{name: "guest_cid", kind: kUint, max: u32Max, required: true},
	{name: "uds_path", kind: kString, required: true},
}}

var entropySchema = &schema{name: "EntropyDeviceConfig", denyUnknown: true, fields: []field{
	{name: "rate_limiter", kind: kObject, obj: rateLimiterSchema},
}}

var actionSchema = &schema{name: "ActionBody", denyUnknown: true, fields: []field{
	{name: "action_type", kind: kString, required: true, enum: []string{"FlushMetrics", "InstanceStart", "SendCtrlAltDel"}},
}}

var vmStateSchema = &schema{name: "Vm", denyUnknown: true, fields: []field{
	{name: "state", kind: kString, required: true, enum: []string{"Paused", "Resumed"}},
}}

var snapshotCreateSchema = &schema{name: "CreateSnapshotParams", denyUnknown: true, fields: []field{
	{name: "snapshot_type", kind: kString, enum: []string{"Full", "Diff"}},
	{name: "snapshot_path", kind: kString, required: true},
	{name: "mem_file_path", kind: kString, required: true},
	{name: "version", kind: kString, until: v1_6},
}}

var memBackendSchema = &schema{name: "MemBackendConfig", denyUnknown: true, fields: []field{
	{name: "backend_path", kind: kString, required: true},
	{name: "backend_type", kind: kString, required: true, enum: []string{"File", "Uffd"}},
}}

var networkOverrideSchema = &schema{name: "NetworkOverride", fields: []field{
	{name: "iface_id", kind: kString, required: true},
	{name: "host_dev_name", kind: kString, required: true},
}}

var vsockOverrideSchema = &schema{name: "VsockOverride", fields: []field{
	{name: "uds_path", kind: kString, required: true},
}}

var snapshotLoadSchema = &schema{name: "LoadSnapshotConfig", denyUnknown: true, fields: []field{
	{name: "snapshot_path", kind: kString, required: true},
	{name: "mem_file_path", kind: kString},
	{name: "mem_backend", kind: kObject, obj: memBackendSchema},
	{name: "enable_diff_snapshots", kind: kBool},
	{name: "track_dirty_pages", kind: kBool, since: v1_13},
	{name: "resume_vm", kind: kBool},
	{name: "network_overrides", kind: kArray, obj: networkOverrideSchema, since: v1_12},
	{name: "vsock_override", kind: kObject, obj: vsockOverrideSchema, since: v1_16},
	// clock_realtime came with v1.16.0 and was backported to v1.14.4 and
	// v1.15.1 (src/vmm/src/vmm_config/snapshot.rs at those tags).
	{name: "clock_realtime", kind: kBool, since: v1_16, backports: []version{{1, 14, 4, ""}, {1, 15, 1, ""}}},
	{name: "huge_pages", kind: kString, enum: []string{"Snapshot", "None", "Transparent", "2M"}, since: v1_17},
}}
