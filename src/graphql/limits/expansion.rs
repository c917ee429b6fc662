//! The second guard: fragments, each measured once, before anything walks their spreads.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Why a parsed document was refused before validation.
#[derive(Debug, PartialEq, Eq)]
pub enum ExpansionRefusal {
    Cycle { fragment: String },
    TooManySelections { limit: usize },
    TooDeep { limit: usize },
    FieldsTooDeep { limit: usize },
}

impl std::fmt::Display for ExpansionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cycle { fragment } => write!(f, "Cannot spread fragment \"{fragment}\": it spreads itself"),
            Self::TooManySelections { limit } => write!(
                f,
                "Query is too complex: the document selects more than {limit} fields, fragments and __typename once its fragments \
                 are expanded (twice GRAPHQL_MAX_COMPLEXITY)"
            ),
            Self::TooDeep { limit } => write!(
                f,
                "the document's selections nest more than {limit} levels deep once its fragments are \
                 expanded (GRAPHQL_MAX_NESTING)"
            ),
            Self::FieldsTooDeep { limit } => write!(
                f,
                "Query is nested too deep: its fields nest more than {limit} levels (GRAPHQL_MAX_DEPTH)"
            ),
        }
    }
}

/// The size of a selection set once its fragments are expanded: how many selections a walk
/// that follows every spread visits, and how deep it nests.
#[derive(Clone, Copy, Default)]
struct Expanded {
    selections: u64,
    /// Nesting of selection sets (fields, inline fragments and spreads each open one).
    depth: usize,
    /// Nesting of fields alone, not counting inside `__schema` and `__type`: what
    /// `GRAPHQL_MAX_DEPTH` bounds. Introspection's `ofType` chains are as deep as the schema's
    /// types (GraphiQL asks for nine levels of them), and [`Expanded::depth`] bounds them still.
    field_depth: usize,
}

/// Refuses a document whose operations, with every fragment spread expanded where it is
/// spread, select more than `max_selections` times or nest deeper than `max_depth`, or whose
/// fragments spread each other in a cycle. Linear in the document's size: each fragment is
/// measured once, after the fragments it spreads.
pub fn check_expansion(
    document: &ExecutableDocument,
    max_selections: usize,
    max_depth: usize,
    max_field_depth: usize,
) -> Result<(), ExpansionRefusal> {
    use std::collections::HashMap;

    let names: Vec<&str> = document.fragments.keys().map(|name| name.as_str()).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, name)| (*name, i)).collect();
    // Kahn's algorithm over "fragment i spreads fragment j": measure j before i.
    let mut spreads: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    let mut spread_by: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, name) in names.iter().enumerate() {
        let fragment = &document.fragments[*name];
        let mut found = Vec::new();
        spreads_in(&fragment.node.selection_set.node, &mut found);
        found.sort_unstable();
        found.dedup();
        for spread in found {
            // An unknown fragment is KnownFragmentNames' to report; it expands to nothing here.
            if let Some(&j) = index.get(spread) {
                spreads[i].push(j);
                spread_by[j].push(i);
            }
        }
    }
    let mut waiting: Vec<usize> = spreads.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..names.len()).filter(|&i| waiting[i] == 0).collect();
    let mut measured: Vec<Option<Expanded>> = vec![None; names.len()];
    let measure_of = |name: &str, measured: &[Option<Expanded>]| {
        index.get(name).and_then(|&i| measured[i]).unwrap_or_default()
    };
    while let Some(i) = ready.pop() {
        let fragment = &document.fragments[names[i]];
        let size = measure(&fragment.node.selection_set.node, &|name| measure_of(name, &measured));
        measured[i] = Some(size);
        for &parent in &spread_by[i] {
            waiting[parent] -= 1;
            if waiting[parent] == 0 {
                ready.push(parent);
            }
        }
    }
    if let Some(i) = measured.iter().position(Option::is_none) {
        return Err(ExpansionRefusal::Cycle { fragment: names[i].to_owned() });
    }
    for size in measured.iter().flatten() {
        check_size(*size, max_selections, max_depth)?;
    }
    for (_, operation) in document.operations.iter() {
        let size = measure(&operation.node.selection_set.node, &|name| measure_of(name, &measured));
        check_size(size, max_selections, max_depth)?;
        if size.field_depth > max_field_depth {
            return Err(ExpansionRefusal::FieldsTooDeep { limit: max_field_depth });
        }
    }
    Ok(())
}

fn check_size(size: Expanded, max_selections: usize, max_depth: usize) -> Result<(), ExpansionRefusal> {
    if size.selections > max_selections as u64 {
        return Err(ExpansionRefusal::TooManySelections { limit: max_selections });
    }
    if size.depth > max_depth {
        return Err(ExpansionRefusal::TooDeep { limit: max_depth });
    }
    Ok(())
}

/// The fragments spread anywhere in `selections` (not through other fragments).
fn spreads_in<'a>(selections: &'a SelectionSet, found: &mut Vec<&'a str>) {
    for selection in &selections.items {
        match &selection.node {
            Selection::Field(field) => spreads_in(&field.node.selection_set.node, found),
            Selection::InlineFragment(inline) => spreads_in(&inline.node.selection_set.node, found),
            Selection::FragmentSpread(spread) => found.push(spread.node.fragment_name.node.as_str()),
        }
    }
}

/// The expansion of `selections`, given the expansion of every fragment it may spread. The
/// recursion follows the document's own nesting, which [`scan_document`] has bounded.
fn measure(selections: &SelectionSet, fragment: &dyn Fn(&str) -> Expanded) -> Expanded {
    let mut total = Expanded::default();
    for selection in &selections.items {
        let inner = match &selection.node {
            Selection::Field(field) => measure(&field.node.selection_set.node, fragment),
            Selection::InlineFragment(inline) => measure(&inline.node.selection_set.node, fragment),
            Selection::FragmentSpread(spread) => fragment(spread.node.fragment_name.node.as_str()),
        };
        total.selections = total.selections.saturating_add(1).saturating_add(inner.selections);
        total.depth = total.depth.max(inner.depth + 1);
        let field_depth = match &selection.node {
            Selection::Field(field) if matches!(field.node.name.node.as_str(), "__schema" | "__type") => 1,
            Selection::Field(_) => inner.field_depth + 1,
            _ => inner.field_depth,
        };
        total.field_depth = total.field_depth.max(field_depth);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(source).expect("a valid document")
    }

    #[test]
    fn fragments_are_measured_once_however_often_they_are_spread() {
        // Each level spreads the one below twice: 2^40 selections if walked naively.
        let mut source = String::from("query { ...F40 }\nfragment F0 on Query { __typename }\n");
        for level in 1..=40 {
            source.push_str(&format!("fragment F{level} on Query {{ ...F{0} ...F{0} }}\n", level - 1));
        }
        let started = std::time::Instant::now();
        let refused = check_expansion(&parse(&source), 4000, 64, 64).unwrap_err();
        assert_eq!(refused, ExpansionRefusal::TooManySelections { limit: 4000 });
        assert!(started.elapsed().as_millis() < 100, "{:?}", started.elapsed());

        // The same shape, small enough: accepted.
        let small = "query { ...F2 } fragment F0 on Query { __typename } \
                     fragment F1 on Query { ...F0 ...F0 } fragment F2 on Query { ...F1 ...F1 }";
        assert_eq!(check_expansion(&parse(small), 4000, 64, 64), Ok(()));
    }

    /// `{ name { name { … leaf } } }`, `levels` deep.
    fn nested_field(name: &str, levels: usize, leaf: &str) -> String {
        format!("{}{{ {leaf} }}{}", format!("{{ {name} ").repeat(levels), " }".repeat(levels))
    }

    #[test]
    fn fragment_cycles_and_deep_expansions_are_refused() {
        let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { health { ...A } }";
        assert!(matches!(check_expansion(&parse(cycle), 4000, 64, 64), Err(ExpansionRefusal::Cycle { .. })));
        let selfish = "query { ...A } fragment A on Query { ...A }";
        assert!(matches!(
            check_expansion(&parse(selfish), 4000, 64, 64),
            Err(ExpansionRefusal::Cycle { .. })
        ));

        // Ten fragments, each nesting two levels and spreading the next: 20 levels expanded.
        let mut chain = String::from("query { ...N0 }\n");
        for level in 0..10 {
            let next = if level < 9 { format!("...N{}", level + 1) } else { "id".to_owned() };
            chain.push_str(&format!("fragment N{level} on Query {{ a {{ b {{ {next} }} }} }}\n"));
        }
        assert_eq!(check_expansion(&parse(&chain), 4000, 64, 64), Ok(()));
        assert_eq!(
            check_expansion(&parse(&chain), 4000, 16, 64),
            Err(ExpansionRefusal::TooDeep { limit: 16 })
        );
        // 20 levels of fields through the chain, but not inside introspection.
        assert_eq!(
            check_expansion(&parse(&chain), 4000, 64, 19),
            Err(ExpansionRefusal::FieldsTooDeep { limit: 19 })
        );
        let introspection = format!(
            "{{ __schema {{ types {{ fields {{ type {} }} }} }} }}",
            nested_field("ofType", 8, "name")
        );
        assert_eq!(check_expansion(&parse(&introspection), 4000, 64, 4), Ok(()));
        assert_eq!(
            check_expansion(&parse("{ a { b { c { d { e } } } } }"), 4000, 64, 4),
            Err(ExpansionRefusal::FieldsTooDeep { limit: 4 })
        );
    }
}
