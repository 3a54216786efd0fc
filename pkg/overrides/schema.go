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
