package overrides

// configYAML is the layout of the `overrides` block in YAML.
type configYAML struct {
	limitsYAML              `yaml:",inline"`
	Defaults                *limitsYAML `yaml:"defaults"`
	PerTenantOverrideConfig *string     `yaml:"per_tenant_override_config"`
	PerTenantOverridePeriod *duration   `yaml:"per_tenant_override_period"`
}

// runtimeYAML is the layout of a per-tenant overrides file.
type runtimeYAML struct {
	Overrides map[string]*limitsYAML `yaml:"overrides"`
}

// YAMLSchema returns a value whose type has the layout of the `overrides`
// block, so the config loader can name keys it does not know
// (pkg/yamlkeys); UnmarshalYAML decodes exactly this layout.
func (*Config) YAMLSchema() any { return configYAML{} }

// RuntimeYAMLSchema is YAMLSchema for a per-tenant overrides file
// (ParseRuntimeConfig decodes exactly this layout).
func RuntimeYAMLSchema() any { return runtimeYAML{} }

// SetKeyCheck installs f, run on the runtime file's bytes at every Reload
// before they are parsed: f reports the file's unknown keys (the config
// loader's check) and, by returning an error, rejects the file as a parse
// error would (the previous limits stay).
func (o *Overrides) SetKeyCheck(f func(data []byte) error) { o.keyCheck.Store(&f) }
