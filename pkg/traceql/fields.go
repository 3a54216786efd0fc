package traceql

// Fields is what a query reads of a trace besides what every evaluation
// reads (span IDs, parents, times, names, kinds, statuses, scope names
// and versions, links' attributes for child-of links, the root resource's
// service.name): the attributes it names and whether it reads events.
// A caller may leave everything else out of the traces it evaluates.
type Fields struct {
	// Attrs are the attributes named, by scope. ScopeUnscoped reads the
	// span's attribute and the resource's.
	Attrs []FieldRef
	// Events: event attributes or event intrinsics are read.
	Events bool
}

// FieldRef is one attribute a query names.
type FieldRef struct {
	Scope Scope
	Name  string
}

// Fields returns what q reads (see Fields).
func (q *Query) Fields() Fields {
	var f Fields
	seen := map[FieldRef]bool{}
	var ex func(e *expr)
	ex = func(e *expr) {
		if e == nil {
			return
		}
		switch e.kind {
		case eAttr:
			r := FieldRef{Scope: e.scope, Name: e.name}
			if !seen[r] {
				seen[r] = true
				f.Attrs = append(f.Attrs, r)
			}
			if e.scope == ScopeEvent {
				f.Events = true
			}
		case eIntr:
			if intrinsicInfos[e.intr].event {
				f.Events = true
			}
		}
		ex(e.l)
		ex(e.r)
	}
	var pipe func(p *pipeline)
	var ss func(s *ssExpr)
	ss = func(s *ssExpr) {
		if s == nil {
			return
		}
		ex(s.filter)
		ss(s.l)
		ss(s.r)
		if s.pipe != nil {
			pipe(s.pipe)
		}
	}
	pipe = func(p *pipeline) {
		for _, st := range p.stages {
			ss(st.ss)
			ex(st.field)
			for _, e := range st.fields {
				ex(e)
			}
		}
	}
	pipe(q.pipe)
	return f
}
