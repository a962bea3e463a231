//! The size checks on the text of a document: bytes, tokens and bracket nesting, in one linear
//! scan, before anything parses it.

use super::{DocumentLimits, LimitError};

/// The size checks on the text: bytes, tokens and bracket nesting, in one linear scan.
pub fn check_text(text: &str, limits: &DocumentLimits) -> Result<(), LimitError> {
    if text.len() > limits.max_bytes {
        return Err(LimitError::TooLong(text.len(), limits.max_bytes));
    }
    let bytes = text.as_bytes();
    let (mut at, mut tokens, mut nesting) = (0, 0, 0usize);
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                at += 1;
                continue;
            }
            b'#' => {
                while at < bytes.len() && !matches!(bytes[at], b'\n' | b'\r') {
                    at += 1;
                }
                continue;
            }
            b'"' => at = skip_string(bytes, at),
            b'{' | b'(' | b'[' => {
                nesting += 1;
                if nesting > limits.max_nesting() {
                    return Err(LimitError::NestedTooDeep(limits.max_nesting()));
                }
                at += 1;
            }
            b'}' | b')' | b']' => {
                nesting = nesting.saturating_sub(1);
                at += 1;
            }
            b'.' if bytes[at..].starts_with(b"...") => at += 3,
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                at += 1;
                while at < bytes.len() && (bytes[at] == b'_' || bytes[at].is_ascii_alphanumeric()) {
                    at += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                at += 1;
                while at < bytes.len()
                    && (bytes[at].is_ascii_alphanumeric()
                        || matches!(bytes[at], b'.' | b'+' | b'-'))
                {
                    at += 1;
                }
            }
            _ => at += 1,
        }
        tokens += 1;
        if tokens > limits.max_tokens {
            return Err(LimitError::TooManyTokens(limits.max_tokens));
        }
    }
    Ok(())
}

/// The index after the string starting at `start` (a `"` or `"""`), or the end of the text.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut at = start + 3;
        while at < bytes.len() {
            if bytes[at..].starts_with(b"\\\"\"\"") {
                at += 4;
            } else if bytes[at..].starts_with(b"\"\"\"") {
                return at + 3;
            } else {
                at += 1;
            }
        }
        return at;
    }
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            b'\n' | b'\r' => return at,
            _ => at += 1,
        }
    }
    at.min(bytes.len())
}
