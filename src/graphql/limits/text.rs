//! The first guard: a document's text, counted before it is parsed.

/// Why a document's text was refused before parsing.
#[derive(Debug, PartialEq, Eq)]
pub enum TextRefusal {
    TooLong { limit: usize },
    TooDeep { limit: usize },
    TooManyTokens { limit: usize },
}

/// Whether a GraphQL document holds a NUL character, as itself or as an escape in a string
/// (`\u0000`, `\u{0}`).
pub fn names_nul(source: &str) -> bool {
    if source.contains('\0') || source.contains("\\u0000") {
        return true;
    }
    source.match_indices("\\u{").any(|(at, escape)| {
        let digits = &source[at + escape.len()..];
        let zeros = digits.bytes().take_while(|byte| *byte == b'0').count();
        zeros > 0 && digits[zeros..].starts_with('}')
    })
}

/// Whether a key or a string anywhere in `variables` holds a NUL character.
pub fn holds_nul(variables: &async_graphql::Variables) -> bool {
    use async_graphql::Value;
    let mut pending: Vec<&Value> = variables.values().collect();
    if variables.keys().any(|key| key.contains('\0')) {
        return true;
    }
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) if text.contains('\0') => return true,
            Value::List(items) => pending.extend(items),
            Value::Object(fields) => {
                if fields.keys().any(|key| key.contains('\0')) {
                    return true;
                }
                pending.extend(fields.values());
            }
            _ => {}
        }
    }
    false
}

impl std::fmt::Display for TextRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { limit } => write!(
                f,
                "the document is longer than {limit} bytes (GRAPHQL_MAX_DOCUMENT_BYTES): send large values, \
                 such as an OpenAPI document, as variables"
            ),
            Self::TooDeep { limit } => write!(
                f,
                "the document nests `{{`, `[` and `(` more than {limit} levels deep (GRAPHQL_MAX_NESTING)"
            ),
            Self::TooManyTokens { limit } => {
                write!(
                    f,
                    "the document is too complex to read: it has more than {limit} tokens (GRAPHQL_MAX_TOKENS)"
                )
            }
        }
    }
}

/// Counts the tokens and bracket nesting of a GraphQL document in one pass, without
/// recursion, stopping at the first limit passed. Strings (block strings included) and
/// comments are skipped as the GraphQL lexer skips them; anything malformed is left for the
/// parser to refuse.
pub fn scan_document(source: &str, max_nesting: usize, max_tokens: usize) -> Result<(), TextRefusal> {
    let bytes = source.as_bytes();
    let (mut i, mut depth, mut tokens) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => i = skip_block_string(bytes, i + 3),
            b'"' => i = skip_string(bytes, i + 1),
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(TextRefusal::TooDeep { limit: max_nesting });
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            byte if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'+' | b'.'))
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        tokens += 1;
        if tokens > max_tokens {
            return Err(TextRefusal::TooManyTokens { limit: max_tokens });
        }
    }
    Ok(())
}

/// The index after a `"…"` string whose opening quote ends before `i` (or the line's end, where
/// the parser will refuse the unterminated string).
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after a `"""…"""` block string whose opening quotes end before `i`.
fn skip_block_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_counts_brackets_outside_strings_and_comments() {
        assert_eq!(scan_document("{ a { b { c } } }", 3, 100), Ok(()));
        assert_eq!(scan_document("{ a { b { c } } }", 2, 100), Err(TextRefusal::TooDeep { limit: 2 }));
        assert_eq!(scan_document(r#"{ a(x: "{{{{[[[[") }"#, 2, 100), Ok(()));
        assert_eq!(scan_document("{ a(x: \"\"\"{{{{ \\\"\"\" [[[[\"\"\") }", 2, 100), Ok(()));
        assert_eq!(scan_document("# {{{{{{\n{ a }", 1, 100), Ok(()));
        assert_eq!(
            scan_document(
                &format!("query {{ p(id: {}1{}) }}", "[".repeat(3000), "]".repeat(3000)),
                64,
                100_000
            ),
            Err(TextRefusal::TooDeep { limit: 64 })
        );
        assert_eq!(scan_document("{ a b c d }", 8, 5), Err(TextRefusal::TooManyTokens { limit: 5 }));
        assert_eq!(scan_document("{ a b c }", 8, 5), Ok(()));
        // Unterminated strings end the scan; the parser refuses them.
        assert_eq!(scan_document("{ a(x: \"never closed", 8, 100), Ok(()));
        assert_eq!(scan_document("{ a(x: \"\"\"never closed", 8, 100), Ok(()));
    }
}
