//! A linear pass over a YAML document's events that measures the document as it would be with
//! its aliases expanded, without expanding anything.
//!
//! yaml_serde bounds aliases by the number of jumps (100 per event), not by what they produce,
//! so a few kilobytes of nested aliases ("billion laughs") build millions of values; and it
//! loads every event before it checks nesting. This pass runs first, on libyaml's event parser
//! (the one yaml_serde uses): an anchored node's expanded size is known when the node ends, an
//! alias adds its anchor's size and height, so the expanded size and depth are known exactly
//! after one pass and refused the moment they pass the limits.

use std::collections::HashMap;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use libyaml_rs as sys;

use super::budget::Budget;
use super::model::ParseError;

/// Refuses `text` when, with its aliases expanded, it would hold more values or nest deeper
/// than the budget's limits. Syntax errors are left for the real parse to report.
pub(crate) fn measure_yaml(text: &str, budget: &Budget<'_>) -> Result<(), ParseError> {
    let Some(mut events) = Events::new(text) else {
        return Ok(());
    };
    let limits = budget.limits();
    let mut measure = Measure::default();
    while let Some(event) = events.next() {
        budget.tick()?;
        let deepest = match measure.apply(event) {
            Step::Continue(deepest) => deepest,
            Step::Done => return Ok(()),
        };
        if deepest > limits.max_depth {
            return budget.refuse(ParseError::TooDeep { limit: limits.max_depth });
        }
        if measure.total > limits.max_values {
            let through_aliases = measure.total - measure.through_aliases <= limits.max_values;
            return budget.refuse(ParseError::TooManyValues { limit: limits.max_values, through_aliases });
        }
        // Values are not all alike: an alias of a long string copies the string.
        if measure.bytes_through_aliases > limits.max_output_bytes {
            let limit_mb = limits.max_output_bytes.div_ceil(1024 * 1024);
            return budget.refuse(ParseError::AliasesRepeatTooMuch { limit_mb });
        }
    }
    Ok(())
}

/// Size (values), height (levels, the node itself included) and scalar bytes of a node once
/// expanded.
#[derive(Clone, Copy, Default)]
struct Extent {
    size: usize,
    height: usize,
    bytes: usize,
}

struct Open {
    anchor: Option<Vec<u8>>,
    extent: Extent,
}

#[derive(Default)]
struct Measure {
    open: Vec<Open>,
    anchors: HashMap<Vec<u8>, Extent>,
    /// Values so far, expanded.
    total: usize,
    /// The part of `total` that aliases added.
    through_aliases: usize,
    /// Scalar bytes that aliases added.
    bytes_through_aliases: usize,
}

enum Step {
    /// The deepest level the event reaches, expanded.
    Continue(usize),
    Done,
}

impl Measure {
    fn apply(&mut self, event: Event) -> Step {
        let depth = self.open.len() + 1;
        match event {
            Event::DocumentStart => {
                self.anchors.clear();
                Step::Continue(0)
            }
            Event::StreamEnd => Step::Done,
            Event::Start { anchor } => {
                self.total = self.total.saturating_add(1);
                self.open.push(Open { anchor, extent: Extent { size: 1, height: 1, bytes: 0 } });
                Step::Continue(depth)
            }
            Event::End => {
                if let Some(closed) = self.open.pop() {
                    if let Some(anchor) = closed.anchor {
                        self.anchors.insert(anchor, closed.extent);
                    }
                    self.add_to_parent(closed.extent);
                }
                Step::Continue(0)
            }
            Event::Scalar { anchor, bytes } => {
                let extent = Extent { size: 1, height: 1, bytes };
                if let Some(anchor) = anchor {
                    self.anchors.insert(anchor, extent);
                }
                self.total = self.total.saturating_add(1);
                self.add_to_parent(extent);
                Step::Continue(depth)
            }
            Event::Alias { anchor } => {
                // An unknown anchor is the real parse's error to report.
                let extent = self.anchors.get(&anchor).copied().unwrap_or_default();
                self.total = self.total.saturating_add(extent.size);
                self.through_aliases = self.through_aliases.saturating_add(extent.size);
                self.bytes_through_aliases = self.bytes_through_aliases.saturating_add(extent.bytes);
                self.add_to_parent(extent);
                Step::Continue((depth + extent.height).saturating_sub(1))
            }
        }
    }

    fn add_to_parent(&mut self, child: Extent) {
        if let Some(parent) = self.open.last_mut() {
            parent.extent.size = parent.extent.size.saturating_add(child.size);
            parent.extent.height = parent.extent.height.max(child.height.saturating_add(1));
            parent.extent.bytes = parent.extent.bytes.saturating_add(child.bytes);
        }
    }
}

/// What the measure needs of one libyaml event.
enum Event {
    DocumentStart,
    StreamEnd,
    /// A sequence or mapping starts.
    Start {
        anchor: Option<Vec<u8>>,
    },
    /// A sequence or mapping ends.
    End,
    Scalar {
        anchor: Option<Vec<u8>>,
        bytes: usize,
    },
    Alias {
        anchor: Vec<u8>,
    },
}

/// libyaml's pull parser over borrowed text.
struct Events<'t> {
    /// Boxed because libyaml keeps a pointer to the parser inside it: it must never move.
    parser: Box<MaybeUninit<sys::yaml_parser_t>>,
    finished: bool,
    _text: PhantomData<&'t [u8]>,
}

impl<'t> Events<'t> {
    fn new(text: &'t str) -> Option<Self> {
        let mut parser = Box::new(MaybeUninit::<sys::yaml_parser_t>::uninit());
        // SAFETY: `parser` is a heap allocation that stays put until `Drop` deletes it; the
        // input pointer and length come from `text`, which outlives `Events` ('t).
        unsafe {
            if sys::yaml_parser_initialize(parser.as_mut_ptr()).fail {
                return None;
            }
            sys::yaml_parser_set_encoding(parser.as_mut_ptr(), sys::YAML_UTF8_ENCODING);
            sys::yaml_parser_set_input_string(parser.as_mut_ptr(), text.as_ptr(), text.len() as u64);
        }
        Some(Events { parser, finished: false, _text: PhantomData })
    }

    /// The next event; `None` after the end of the stream or a syntax error.
    fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        let mut raw = MaybeUninit::<sys::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized in `new`; on success libyaml has filled `raw`, its
        // anchor pointers are NUL-terminated strings it owns until `yaml_event_delete`, which
        // runs after they are copied.
        unsafe {
            if sys::yaml_parser_parse(self.parser.as_mut_ptr(), raw.as_mut_ptr()).fail {
                self.finished = true;
                return None;
            }
            let event = &*raw.as_ptr();
            let converted = match event.type_ {
                sys::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
                sys::YAML_STREAM_END_EVENT => {
                    self.finished = true;
                    Event::StreamEnd
                }
                sys::YAML_SEQUENCE_START_EVENT => {
                    Event::Start { anchor: anchor_name(event.data.sequence_start.anchor) }
                }
                sys::YAML_MAPPING_START_EVENT => {
                    Event::Start { anchor: anchor_name(event.data.mapping_start.anchor) }
                }
                sys::YAML_SEQUENCE_END_EVENT | sys::YAML_MAPPING_END_EVENT => Event::End,
                sys::YAML_SCALAR_EVENT => Event::Scalar {
                    anchor: anchor_name(event.data.scalar.anchor),
                    bytes: usize::try_from(event.data.scalar.length).unwrap_or(usize::MAX),
                },
                sys::YAML_ALIAS_EVENT => {
                    Event::Alias { anchor: anchor_name(event.data.alias.anchor).unwrap_or_default() }
                }
                // Stream start and document end change nothing measured.
                _ => Event::DocumentStart,
            };
            sys::yaml_event_delete(raw.as_mut_ptr());
            Some(converted)
        }
    }
}

/// Copies a libyaml anchor name (NULL when the node has none).
///
/// # Safety
/// `pointer` is NULL or points to a NUL-terminated string that lives for the call.
unsafe fn anchor_name(pointer: *const u8) -> Option<Vec<u8>> {
    if pointer.is_null() {
        return None;
    }
    // SAFETY: the caller's guarantee.
    Some(unsafe { CStr::from_ptr(pointer.cast()) }.to_bytes().to_vec())
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        // SAFETY: `new` only builds an `Events` around a parser it initialized.
        unsafe { sys::yaml_parser_delete(self.parser.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget::ParseLimits;
    use super::*;

    fn measure(text: &str, max_values: usize, max_depth: usize) -> Result<(), ParseError> {
        let limits = ParseLimits { max_values, max_depth, ..ParseLimits::DEFAULT };
        measure_yaml(text, &Budget::new(&limits))
    }

    /// `levels` anchors, each a list of ten aliases of the one before: 10^levels values.
    fn laughs(levels: usize) -> String {
        let mut text = String::from("a0: &a0 [lol]\n");
        for level in 1..=levels {
            let previous = format!("*a{}", level - 1);
            text.push_str(&format!("a{level}: &a{level} [{}]\n", vec![previous; 10].join(", ")));
        }
        text
    }

    #[test]
    fn counts_what_aliases_expand_to() {
        // a0 is 2 values ([lol]); a1 holds ten of them: 21; the document also counts its keys.
        let text = "a0: &a0 [lol]\na1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n";
        assert!(measure(text, 26, 100).is_ok());
        assert_eq!(
            measure(text, 25, 100),
            Err(ParseError::TooManyValues { limit: 25, through_aliases: true })
        );
    }

    #[test]
    fn billion_laughs_is_refused_at_once() {
        let started = std::time::Instant::now();
        let error = measure(&laughs(9), 1_000_000, 100).unwrap_err();
        assert_eq!(error, ParseError::TooManyValues { limit: 1_000_000, through_aliases: true });
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn nesting_counts_through_aliases_and_is_refused_before_loading() {
        // Three levels written, seven reached: deep is a 3-level list used at level 5.
        let text = "deep: &deep [[x]]\nuse: [[[*deep]]]\n";
        assert!(measure(text, 1000, 7).is_ok());
        assert_eq!(measure(text, 1000, 6), Err(ParseError::TooDeep { limit: 6 }));
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(measure(&deep, 1_000_000, 100), Err(ParseError::TooDeep { limit: 100 }));
        let deep = format!("{}x: 1", "a: {".repeat(100_000));
        assert_eq!(measure(&deep, 1_000_000, 100), Err(ParseError::TooDeep { limit: 100 }));
    }

    #[test]
    fn aliases_of_long_strings_count_their_bytes() {
        // 100 KB aliased ten times is 1 MB repeated: at the limit; eleven times is past it.
        let limits = ParseLimits { max_output_bytes: 1024 * 1024, ..ParseLimits::DEFAULT };
        let measure = |text: &str| measure_yaml(text, &Budget::new(&limits));
        let long = "x".repeat(100 * 1024);
        let ten = format!("a: &a {long}\nb: [{}]\n", ["*a"; 10].join(", "));
        assert!(measure(&ten).is_ok());
        let eleven = format!("a: &a {long}\nb: [{}]\n", ["*a"; 11].join(", "));
        assert_eq!(measure(&eleven), Err(ParseError::AliasesRepeatTooMuch { limit_mb: 1 }));
    }

    #[test]
    fn syntax_errors_are_left_to_the_parser() {
        assert!(measure("a: [1, 2\nb: }", 10, 10).is_ok());
        assert!(measure("a: *nowhere", 10, 10).is_ok());
    }

    #[test]
    fn plain_documents_count_every_value() {
        // Mapping, two keys, two values: 5.
        assert!(measure("a: 1\nb: 2\n", 5, 100).is_ok());
        assert_eq!(
            measure("a: 1\nb: 2\n", 4, 100),
            Err(ParseError::TooManyValues { limit: 4, through_aliases: false })
        );
    }
}
