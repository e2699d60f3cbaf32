//! Era aliases (spec §1.1): other spellings of keys, renamed to the canonical (E2) name before typing.

/// One alias: in objects of schema type `def`, the key `alias` means `canonical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The schema definition (type name) where the alias applies.
    pub def: &'static str,
    /// The other spelling.
    pub alias: &'static str,
    /// The canonical spelling.
    pub canonical: &'static str,
    /// Which era uses the alias.
    pub era: &'static str,
}

const fn a(def: &'static str, alias: &'static str, canonical: &'static str, era: &'static str) -> Alias {
    Alias {
        def,
        alias,
        canonical,
        era,
    }
}

/// Every alias rvbbit accepts.
pub const ALIASES: &[Alias] = &[
    a("Cascade", "phases", "cells", "E1 (windlass)"),
    a("Cascade", "soundings", "candidates", "E1 (windlass)"),
    a("Cascade", "takes", "candidates", "E3 (lars)"),
    a("Cell", "tackle", "traits", "E1 (windlass)"),
    a("Cell", "skills", "traits", "E3 (lars)"),
    a("Cell", "soundings", "candidates", "E1 (windlass)"),
    a("Cell", "takes", "candidates", "E3 (lars)"),
    a("Cell", "hitl", "htmx", "E3 (lars)"),
    a("OnErrorSpec", "tackle", "traits", "E1 (windlass)"),
    a("OnErrorSpec", "skills", "traits", "E3 (lars)"),
    a("ContextSource", "phase", "cell", "E1 (windlass)"),
    a("AutoContext", "intra_cell", "intra_phase", "E3 (lars)"),
    a("AutoContext", "inter_cell", "inter_phase", "E3 (lars)"),
    a("Anchors", "from_cells", "from_phases", "E3 (lars)"),
    a("NarratorSpec", "triggers", "on_events", "E1 (windlass)"),
    a("Ward", "max_retries", "max_attempts", "E1 (windlass)"),
];

/// The aliases that apply in objects of schema type `def`.
pub fn for_def(def: &str) -> impl Iterator<Item = &'static Alias> + '_ {
    ALIASES.iter().filter(move |a| a.def == def)
}
