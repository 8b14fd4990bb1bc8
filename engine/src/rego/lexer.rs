//! A small Rego tokenizer: enough to tell code from strings and comments, and to track brackets.

/// Token kinds the rewrites care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Identifier or keyword.
    Ident,
    /// Number literal.
    Number,
    /// String literal (quoted or raw).
    Str,
    /// `# …` comment.
    Comment,
    /// A line break.
    Newline,
    /// Any other single character (punctuation, operators).
    Punct(char),
}

/// A token with its byte range.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    /// Kind.
    pub kind: Kind,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the token.
    pub end: usize,
}

impl Token {
    /// Whether the token carries meaning (not a comment or line break).
    pub fn significant(&self) -> bool {
        !matches!(self.kind, Kind::Comment | Kind::Newline)
    }
}

/// Splits `src` into tokens; whitespace other than newlines is dropped. Unterminated strings run
/// to the end of the line (regorus will report them properly later).
pub fn tokenize(src: &str) -> Vec<Token> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b'\n' => {
                i += 1;
                Kind::Newline
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Kind::Comment
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    // An escape never swallows a line break: quoted strings are one line.
                    if bytes[i] == b'\\' && bytes.get(i + 1).is_some_and(|&b| b != b'\n') {
                        i += 1;
                    }
                    i += 1;
                }
                // The closing quote belongs to the string; the line break of an unterminated
                // one does not.
                if i < bytes.len() && bytes[i] == b'"' {
                    i += 1;
                }
                Kind::Str
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                Kind::Str
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Kind::Ident
            }
            c if c.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                Kind::Number
            }
            _ => {
                // One character, possibly multi-byte UTF-8.
                let ch = src[i..].chars().next().unwrap_or('?');
                i += ch.len_utf8();
                Kind::Punct(ch)
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i.min(bytes.len()),
        });
    }
    tokens
}

/// 1-based line and column of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}
