//! Rules for the text clients send: what every supported database can store, and what a name
//! may look like. Services check their inputs with these before anything is written.

use crate::error::InvalidInput;

/// Refuses text that a database cannot store as sent: PostgreSQL has no room for the NUL
/// character in a text column.
pub fn storable(field: &str, value: &str) -> Result<(), InvalidInput> {
    if value.contains('\0') {
        return Err(InvalidInput::new(
            field,
            "must not contain the NUL character",
        ));
    }
    Ok(())
}

/// A one-line name: trimmed, 1 to `max` characters, no control characters (NUL, line breaks,
/// escapes).
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, InvalidInput> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            field,
            "must not contain control characters (NUL, line breaks, tabs)",
        ));
    }
    if trimmed.chars().count() > max {
        return Err(InvalidInput::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Free text (a description): storable and at most `max` characters; line breaks are fine.
pub fn free_text(field: &str, value: &str, max: usize) -> Result<(), InvalidInput> {
    storable(field, value)?;
    if value.chars().count() > max {
        return Err(InvalidInput::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_single_line_and_bounded() {
        assert_eq!(required_text("name", "  마우스 ", 10).unwrap(), "마우스");
        assert!(required_text("name", "   ", 10).is_err());
        assert!(required_text("name", "a\u{0}b", 10).is_err());
        assert!(required_text("name", "a\nb", 10).is_err());
        assert!(required_text("name", "열한글자열한글자열한글", 10).is_err());
        assert_eq!(
            required_text("name", "열글자열글자열글자열", 10)
                .unwrap()
                .chars()
                .count(),
            10
        );
    }

    #[test]
    fn free_text_keeps_line_breaks_but_not_nul() {
        assert!(free_text("description", "line\nbreak\ttab", 100).is_ok());
        let nul = free_text("description", "a\u{0}", 100).unwrap_err();
        assert_eq!(nul.field, "description");
        assert!(free_text("description", &"x".repeat(101), 100).is_err());
        assert!(storable("category", "전자기기").is_ok());
    }
}
