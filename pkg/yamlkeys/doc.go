// Package yamlkeys finds the keys of a YAML document that a Go type does not
// decode, at any depth, with their full dotted path and line.
//
// Invariants: Check never decodes and never fails; it reports every mapping
// key that no field (by its yaml tag, inline structs and maps included)
// takes, exactly once, in document order. A type whose YAML layout differs
// from its fields (a custom UnmarshalYAML) is walked through the layout its
// YAMLSchema method returns; any other custom unmarshaler is a leaf. Keys a
// type declares with IgnoredYAMLKeys, or that match an Options.Ignored
// pattern, are reported as Ignored, never as unknown. Type mismatches (a
// scalar where a mapping belongs) are the decoder's business and are
// skipped here.
package yamlkeys
