//! Input rules for account fields. Messages are safe to show the client and
//! never echo a password.

use crate::error::ValidationError;

/// Shortest username.
pub const USERNAME_MIN: usize = 3;
/// Longest username.
pub const USERNAME_MAX: usize = 32;
/// Longest display name, in characters (Unicode scalar values).
pub const DISPLAY_NAME_MAX_CHARS: usize = 64;
/// Longest display name, in bytes of UTF-8.
pub const DISPLAY_NAME_MAX_BYTES: usize = 256;
/// Shortest password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password, in bytes: beyond this it is not a password but a way to
/// make the server hash megabytes.
pub const PASSWORD_MAX_BYTES: usize = 256;
/// Longest device id in preferences.
pub const DEVICE_ID_MAX: usize = 256;

/// A username: 3-32 of `[A-Za-z0-9_.-]`, starting with a letter or digit.
/// ASCII only, so look-alike letters from other scripts cannot impersonate
/// an existing user; unique ignoring case.
pub fn username(s: &str) -> Result<(), ValidationError> {
    let n = s.len();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&n) {
        return Err(ValidationError::new(
            "username",
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters"),
        ));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if !s.chars().all(ok_char) || !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(ValidationError::new(
            "username",
            "may hold only letters A-Z, digits, '_', '.' and '-', and must start with a letter or digit",
        ));
    }
    Ok(())
}

/// Characters that are invisible or reorder text: allowed nowhere in a name.
fn is_forbidden_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                  // soft hyphen
        | '\u{034F}'                // combining grapheme joiner
        | '\u{061C}'                // arabic letter mark
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // hangul fillers
        | '\u{180E}'                // mongolian vowel separator
        | '\u{200B}' | '\u{200E}' | '\u{200F}' // zero width space, LRM, RLM
        | '\u{2028}'..='\u{202E}'   // line/para separators, bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}'   // word joiner, invisible operators, bidi isolates
        | '\u{FEFF}'                // byte order mark
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
        | '\u{FFFE}' | '\u{FFFF}'   // noncharacters
        | '\u{E0000}'..='\u{E007F}' // tags
        | '\u{E000}'..='\u{F8FF}'   // private use
        | '\u{F0000}'..='\u{10FFFF}'
    )
}

/// Joiners and variation selectors: fine inside an emoji, not a name alone.
fn is_joiner_or_selector(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// A display name, trimmed: 1-64 characters (at most 256 bytes), no control
/// characters, no invisible or text-reordering characters, and something
/// visible.
pub fn display_name(s: &str) -> Result<String, ValidationError> {
    let t = s.trim();
    let field = "displayName";
    if t.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if t.chars().count() > DISPLAY_NAME_MAX_CHARS || t.len() > DISPLAY_NAME_MAX_BYTES {
        return Err(ValidationError::new(
            field,
            format!("must be at most {DISPLAY_NAME_MAX_CHARS} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control() || is_forbidden_format(c)) {
        return Err(ValidationError::new(
            field,
            "must not contain control, invisible or bidirectional-override characters",
        ));
    }
    if t.chars()
        .all(|c| c.is_whitespace() || is_joiner_or_selector(c))
    {
        return Err(ValidationError::new(
            field,
            "must contain a visible character",
        ));
    }
    Ok(t.to_owned())
}

/// A new password: at least 8 characters, at most 256 bytes.
pub fn new_password(s: &str) -> Result<(), ValidationError> {
    if s.chars().count() < PASSWORD_MIN_CHARS {
        return Err(ValidationError::new(
            "password",
            format!("must be at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    password_length(s)
}

/// Any password presented (login too): at most 256 bytes.
pub fn password_length(s: &str) -> Result<(), ValidationError> {
    if s.len() > PASSWORD_MAX_BYTES {
        return Err(ValidationError::new(
            "password",
            format!("must be at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A device id in preferences: at most 256 bytes, no control characters.
pub fn device_id(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.len() > DEVICE_ID_MAX || s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            format!("must be at most {DEVICE_ID_MAX} bytes with no control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["ada", "Ada_Lovelace", "a.b-c", "x12", &"a".repeat(32)] {
            assert!(username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "_ada",
            ".ada",
            "ada lovelace",
            "аda",
            "ada\0",
            "adä",
            &"a".repeat(33),
        ] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("  Ada Lovelace ").unwrap(), "Ada Lovelace");
        for ok in [
            "李小龍",
            "Zoë",
            "👩\u{200D}💻 dev",
            "❤\u{FE0F}",
            "Ἀθηνᾶ",
            &"é".repeat(64),
        ] {
            assert!(display_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "   ",
            "\u{200D}",
            "\u{FE0F}\u{200D}",
            "evil\u{202E}gpj.exe",
            "a\u{200B}b",
            "tab\there",
            "nl\nx",
            "\u{2066}x\u{2069}",
            "bom\u{FEFF}",
            "\u{E0041}tag",
            &"é".repeat(65),
            &"👩\u{200D}".repeat(40),
        ] {
            assert!(display_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert!(new_password("12345678").is_ok());
        assert!(new_password("ñññññññ").is_err());
        assert!(new_password("ññññññññ").is_ok());
        assert!(new_password(&"x".repeat(256)).is_ok());
        let e = new_password(&"secretpw".repeat(100)).unwrap_err();
        assert!(!e.message.contains("secretpw"));
    }
}
