package app

import (
	"flag"
	"reflect"
	"strings"
)

// FlagPaths maps each flag to the YAML path of the setting it sets, as
// /status/config prints the configuration (e.g. "ingester.lifecycler.ring.
// kvstore.store"). Flags that set no field of Config (config.file, the
// receivers' enable switches, -version) are absent. It lets a test check
// that the defaults -help prints are the ones the binary runs with.
func FlagPaths() map[string]string {
	var cfg Config
	f := newFlagSet(&cfg)
	byAddr := map[uintptr]string{}
	fieldPaths(reflect.ValueOf(&cfg).Elem(), "", byAddr)
	out := map[string]string{}
	f.VisitAll(func(fl *flag.Flag) {
		v := reflect.ValueOf(fl.Value)
		if v.Kind() != reflect.Pointer {
			return
		}
		if p, ok := byAddr[v.Pointer()]; ok {
			out[fl.Name] = p
		}
	})
	return out
}

// fieldPaths records the YAML path of every addressable field under v, by
// address (the innermost field wins over a struct that starts at the same
// address, since children are visited after their parent).
func fieldPaths(v reflect.Value, path string, out map[uintptr]string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			fieldPaths(v.Elem(), path, out)
		}
		return
	case reflect.Struct:
	default:
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		p := path
		if !strings.Contains(opts, "inline") {
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			p = join(path, name)
		}
		fv := v.Field(i)
		out[fv.Addr().Pointer()] = p
		fieldPaths(fv, p, out)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
