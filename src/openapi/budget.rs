//! What one import may cost: values read, nesting, bytes produced by `$ref` inlining and
//! examples, and wall time. Every loop that can grow with hostile input charges a [`Budget`].
//!
//! A document is data from whoever can reach `analyzeOpenApi`, so its size alone says little:
//! YAML aliases replay earlier nodes (7.5 KB expanded to 2.25 M values before these limits),
//! and `$ref`s that fan out (a → b,b; b → c,c …) multiply what inlining copies. The limits
//! are on what is *produced*, counted as it is produced, so the work stops at the limit
//! rather than after the damage.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::model::ParseError;

/// The bounds on one import's parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Values in the document once YAML aliases and merge keys are expanded: every scalar,
    /// list and mapping counts one.
    pub max_values: usize,
    /// Nesting of lists and mappings, counted from the top-level mapping (which is level 1).
    pub max_depth: usize,
    /// Bytes of schemas (with `$ref`s inlined), examples and descriptions the endpoints may
    /// hold in total; also what YAML aliases may repeat of the text.
    pub max_output_bytes: usize,
    /// Wall time for reading the document and building the endpoints.
    pub max_duration: Duration,
}

impl ParseLimits {
    /// Against the largest document of the corpus, OpenAI's 3 MB (a test keeps every corpus
    /// document within an eighth of the values and output and a quarter of the depth):
    /// 1,000,000 values is 8 to 16 times its count (keys included); 100 levels is 4 times its
    /// nesting and below the parsers' own 128; 64 MB is 16 to 32 times the schemas and examples
    /// it produces, with room for GitHub's 12 MB description. Accepting 64 MB of inlined schemas
    /// costs about 280 MiB of peak memory while they are stored.
    pub const DEFAULT: ParseLimits = ParseLimits {
        max_values: 1_000_000,
        max_depth: 100,
        max_output_bytes: 64 * 1024 * 1024,
        max_duration: Duration::from_secs(20),
    };
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How many charges pass between two looks at the clock (a look costs ~25 ns; a charge a few).
const CLOCK_EVERY: u32 = 1024;

/// The running account of one import against its [`ParseLimits`].
///
/// Single-threaded (an import runs on one blocking thread), so plain cells suffice. The first
/// refusal is kept: parsers wrap errors raised inside visitors into their own type, and the
/// caller recovers the precise reason with [`Budget::refusal`].
pub(crate) struct Budget<'l> {
    limits: &'l ParseLimits,
    started: Instant,
    values: Cell<usize>,
    output_bytes: Cell<usize>,
    ticks: Cell<u32>,
    refusal: RefCell<Option<ParseError>>,
}

impl<'l> Budget<'l> {
    pub fn new(limits: &'l ParseLimits) -> Self {
        Budget {
            limits,
            started: Instant::now(),
            values: Cell::new(0),
            output_bytes: Cell::new(0),
            ticks: Cell::new(0),
            refusal: RefCell::new(None),
        }
    }

    pub fn limits(&self) -> &ParseLimits {
        self.limits
    }

    /// One more value read, at `depth` (the top-level mapping is depth 1).
    pub fn read_value(&self, depth: usize) -> Result<(), ParseError> {
        if depth > self.limits.max_depth {
            return self.refuse(ParseError::TooDeep { limit: self.limits.max_depth });
        }
        let values = self.values.get() + 1;
        self.values.set(values);
        if values > self.limits.max_values {
            return self
                .refuse(ParseError::TooManyValues { limit: self.limits.max_values, through_aliases: false });
        }
        self.tick()
    }

    /// `bytes` more of schemas or examples kept for the endpoints. `through_refs` words the
    /// refusal for `$ref` inlining, the usual way past the limit.
    pub fn produce(&self, bytes: usize, through_refs: bool) -> Result<(), ParseError> {
        let total = self.output_bytes.get().saturating_add(bytes);
        self.output_bytes.set(total);
        if total > self.limits.max_output_bytes {
            return self.refuse(ParseError::TooMuchOutput {
                limit_mb: self.limits.max_output_bytes.div_ceil(1024 * 1024),
                through_refs,
            });
        }
        self.tick()
    }

    /// A look at the clock now and then.
    pub fn tick(&self) -> Result<(), ParseError> {
        let ticks = self.ticks.get().wrapping_add(1);
        self.ticks.set(ticks);
        if ticks.is_multiple_of(CLOCK_EVERY) {
            self.check_time()?;
        }
        Ok(())
    }

    /// Refuses when the time is up.
    pub fn check_time(&self) -> Result<(), ParseError> {
        if self.started.elapsed() > self.limits.max_duration {
            let limit = self.limits.max_duration;
            let limit = if limit.subsec_millis() == 0 {
                format!("{} s", limit.as_secs())
            } else {
                format!("{} ms", limit.as_millis())
            };
            return self.refuse(ParseError::TooSlow { limit });
        }
        Ok(())
    }

    /// Records `error` as the reason (the first one wins) and returns it.
    pub fn refuse(&self, error: ParseError) -> Result<(), ParseError> {
        let mut refusal = self.refusal.borrow_mut();
        Err(refusal.get_or_insert(error).clone())
    }

    /// The limit that stopped the work, if one did.
    pub fn refusal(&self) -> Option<ParseError> {
        self.refusal.borrow().clone()
    }

    /// Bytes of output charged so far.
    #[cfg(test)]
    pub fn output_bytes(&self) -> usize {
        self.output_bytes.get()
    }
}

/// About the size of `value` as JSON text: its strings (keys included) plus a few bytes per
/// value. Walks the value, so it costs what cloning it costs.
pub(crate) fn weight(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 4,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => items.iter().map(weight).sum::<usize>() + 2,
        Value::Object(map) => map.iter().map(|(key, value)| key.len() + 3 + weight(value)).sum::<usize>() + 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_kept_and_named() {
        let limits = ParseLimits { max_values: 2, max_depth: 3, ..ParseLimits::DEFAULT };
        let budget = Budget::new(&limits);
        assert!(budget.read_value(1).is_ok() && budget.read_value(3).is_ok());
        let error = budget.read_value(2).unwrap_err();
        assert_eq!(error, ParseError::TooManyValues { limit: 2, through_aliases: false });
        assert_eq!(budget.read_value(9).unwrap_err(), error, "the first reason stays");
        assert_eq!(budget.refusal(), Some(error));

        let budget = Budget::new(&limits);
        assert_eq!(budget.read_value(4).unwrap_err(), ParseError::TooDeep { limit: 3 });
    }

    #[test]
    fn output_and_time_are_bounded() {
        let limits = ParseLimits {
            max_output_bytes: 1024 * 1024,
            max_duration: Duration::ZERO,
            ..ParseLimits::DEFAULT
        };
        let budget = Budget::new(&limits);
        assert!(budget.produce(1024 * 1024, true).is_ok());
        let error = budget.produce(1, true).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the document's schemas expand to more than 1 MB through their $refs \
             (limit: IMPORT_MAX_OUTPUT_MB = 1 per document)"
        );
        let budget = Budget::new(&limits);
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(budget.check_time(), Err(ParseError::TooSlow { .. })));
    }

    #[test]
    fn weight_follows_json_text_length() {
        let value = serde_json::json!({"name": "abc", "list": [1, true, null]});
        let text = value.to_string().len();
        let estimate = weight(&value);
        assert!(estimate >= text && estimate <= text * 2, "{estimate} vs {text}");
    }
}
