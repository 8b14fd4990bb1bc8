//! OPA's hoisting of terms out of `not`, reproduced as a source rewrite.
//!
//! OPA's compiler moves call arguments (and calls nested in expressions) out of a negated
//! expression into assignments before it (`__local0__ = input.x; not f(__local0__)`), so an
//! undefined argument makes the whole body fail. regorus evaluates `not f(undefined)` as true.
//! Observed with the OPA CLI (see the tests):
//!
//! | negated expression            | OPA guards                     |
//! |-------------------------------|--------------------------------|
//! | `f(a, b)`, `a > b`, `a != b`, `x in s` | every non-literal operand |
//! | `a == b`, `a = b`             | operands that are calls or arithmetic, refs inside composite operands, dynamic ref indexes |
//! | `ref`                         | dynamic indexes of the ref     |
//!
//! The rewrite inserts `__tollgate_hoistN__ := <term>;` before `not` on the same line, which
//! fails exactly when OPA's hoisted assignment would fail. Line numbers are preserved.

use super::lexer::{Kind, Token};

#[derive(Debug)]
enum Node {
    Literal,
    Var(String),
    Ref {
        dynamic: Vec<Term>,
    },
    Call {
        args: Vec<Term>,
    },
    Composite(Vec<Term>),
    Binary {
        op: String,
        lhs: Box<Term>,
        rhs: Box<Term>,
    },
    Opaque,
}

#[derive(Debug)]
struct Term {
    span: (usize, usize),
    node: Node,
}

struct Parser<'a> {
    src: &'a str,
    toks: &'a [Token],
    pos: usize,
}

const LITERALS: [&str; 3] = ["true", "false", "null"];

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }
    fn text(&self, t: &Token) -> &'a str {
        &self.src[t.start..t.end]
    }
    fn is_punct(&self, c: char) -> bool {
        self.peek().is_some_and(|t| t.kind == Kind::Punct(c))
    }
    /// Reads a binary operator at the cursor, returning its text and token count.
    fn operator(&self) -> Option<(String, usize)> {
        let t = self.peek()?;
        let next = self.toks.get(self.pos + 1);
        let adjacent = |c: char| next.is_some_and(|n| n.kind == Kind::Punct(c) && n.start == t.end);
        match t.kind {
            Kind::Punct(c @ ('=' | '!' | '<' | '>' | ':')) if adjacent('=') => {
                Some((format!("{c}="), 2))
            }
            Kind::Punct(c @ ('=' | '<' | '>' | '+' | '-' | '*' | '/' | '%' | '&' | '|')) => {
                Some((c.to_string(), 1))
            }
            Kind::Ident if self.text(t) == "in" => Some(("in".into(), 1)),
            _ => None,
        }
    }

    fn precedence(op: &str) -> u8 {
        match op {
            "=" | ":=" => 0,
            "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" => 1,
            "|" => 2,
            "&" => 3,
            "+" | "-" => 4,
            _ => 5,
        }
    }

    fn expr(&mut self, min_prec: u8) -> Option<Term> {
        let mut lhs = self.operand()?;
        while let Some((op, n)) = self.operator() {
            let prec = Self::precedence(&op);
            if prec < min_prec {
                break;
            }
            self.pos += n;
            let rhs = self.expr(prec + 1)?;
            lhs = Term {
                span: (lhs.span.0, rhs.span.1),
                node: Node::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
            };
        }
        Some(lhs)
    }

    /// Elements of a bracketed composite up to `close`; `None` when it is a comprehension.
    fn elements(&mut self, close: char) -> Option<Option<Vec<Term>>> {
        let mut items = Vec::new();
        let mut comprehension = false;
        loop {
            if self.is_punct(close) {
                self.pos += 1;
                break;
            }
            if self.is_punct(',') || self.is_punct(':') {
                self.pos += 1;
                continue;
            }
            if self.is_punct('|') {
                comprehension = true;
            }
            if comprehension {
                self.skip_balanced_until(close)?;
                continue;
            }
            items.push(self.expr(2)?);
        }
        Some(if comprehension { None } else { Some(items) })
    }

    fn skip_balanced_until(&mut self, close: char) -> Option<()> {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t.kind {
                Kind::Punct('(' | '[' | '{') => depth += 1,
                Kind::Punct(c @ (')' | ']' | '}')) => {
                    if depth == 0 {
                        return (c == close).then_some(());
                    }
                    depth -= 1;
                }
                _ => {}
            }
            self.pos += 1;
        }
        None
    }

    fn operand(&mut self) -> Option<Term> {
        let t = *self.peek()?;
        let start = t.start;
        let mut node = match t.kind {
            Kind::Number | Kind::Str => {
                self.pos += 1;
                Node::Literal
            }
            Kind::Ident if LITERALS.contains(&self.text(&t)) => {
                self.pos += 1;
                Node::Literal
            }
            Kind::Ident => {
                self.pos += 1;
                Node::Var(self.text(&t).to_string())
            }
            Kind::Punct('-') => {
                self.pos += 1;
                let inner = self.operand()?;
                let span = (start, inner.span.1);
                let node = match inner.node {
                    Node::Literal => Node::Literal,
                    _ => Node::Call { args: vec![inner] },
                };
                return Some(Term { span, node });
            }
            Kind::Punct('(') => {
                self.pos += 1;
                let inner = self.expr(0)?;
                if !self.is_punct(')') {
                    return None;
                }
                self.pos += 1;
                inner.node
            }
            Kind::Punct('[') => {
                self.pos += 1;
                self.elements(']')?.map_or(Node::Opaque, Node::Composite)
            }
            Kind::Punct('{') => {
                self.pos += 1;
                self.elements('}')?.map_or(Node::Opaque, Node::Composite)
            }
            _ => return None,
        };
        let mut end = self
            .toks
            .get(self.pos.wrapping_sub(1))
            .map_or(start, |t| t.end);
        loop {
            if self.is_punct('.') {
                self.pos += 1;
                let name = self.peek().filter(|t| t.kind == Kind::Ident)?;
                end = name.end;
                self.pos += 1;
                node = into_ref(node);
            } else if self.is_punct('[') && self.peek().is_some_and(|t| t.start == end) {
                self.pos += 1;
                let index = self.expr(0)?;
                if !self.is_punct(']') {
                    return None;
                }
                end = self.peek().map_or(end, |t| t.end);
                self.pos += 1;
                node = into_ref(node);
                if let Node::Ref { dynamic } = &mut node {
                    dynamic.push(index);
                }
            } else if self.is_punct('(') && self.peek().is_some_and(|t| t.start == end) {
                self.pos += 1;
                let mut args = Vec::new();
                while !self.is_punct(')') {
                    if self.is_punct(',') {
                        self.pos += 1;
                        continue;
                    }
                    args.push(self.expr(0)?);
                }
                end = self.peek().map_or(end, |t| t.end);
                self.pos += 1;
                node = Node::Call { args };
            } else {
                break;
            }
        }
        Some(Term {
            span: (start, end),
            node,
        })
    }
}

fn into_ref(node: Node) -> Node {
    match node {
        Node::Ref { dynamic } => Node::Ref { dynamic },
        _ => Node::Ref {
            dynamic: Vec::new(),
        },
    }
}

/// What to evaluate before a `not` so it fails where OPA's hoisted assignment would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Assign the term to a fresh variable (fails when the term is undefined).
    Assign(usize, usize),
    /// The term must be a number (arithmetic on anything else is undefined in OPA, an error in
    /// regorus).
    Number(usize, usize),
    /// The term must be a set (`&`, `|`).
    Set(usize, usize),
}

const ARITHMETIC: [&str; 7] = ["+", "-", "*", "/", "%", "&", "|"];

/// Operands of calls: everything that is not a literal is evaluated before the `not`.
fn guard_argument(term: &Term, out: &mut Vec<Guard>) {
    match &term.node {
        Node::Literal | Node::Opaque => {}
        Node::Var(v) if v == "_" => {}
        Node::Composite(items) => items.iter().for_each(|i| guard_argument(i, out)),
        Node::Binary { op, lhs, rhs } if ARITHMETIC.contains(&op.as_str()) => {
            guard_arithmetic(op, lhs, rhs, out);
        }
        _ => out.push(Guard::Assign(term.span.0, term.span.1)),
    }
}

/// `a + b` is `plus(a, b)`: its operands are hoisted, and they must have the operator's type.
fn guard_arithmetic(op: &str, lhs: &Term, rhs: &Term, out: &mut Vec<Guard>) {
    guard_argument(lhs, out);
    guard_argument(rhs, out);
    let literal_number = |t: &Term| matches!(t.node, Node::Literal);
    for (side, other) in [(lhs, rhs), (rhs, lhs)] {
        if matches!(side.node, Node::Literal | Node::Opaque | Node::Composite(_)) {
            continue;
        }
        let (a, b) = side.span;
        match op {
            "+" | "*" | "/" | "%" => out.push(Guard::Number(a, b)),
            "-" if literal_number(other) => out.push(Guard::Number(a, b)),
            "&" | "|" => out.push(Guard::Set(a, b)),
            _ => {}
        }
    }
}

/// Operands of `==`/`=` and bare terms: a ref stays (undefined makes the expression
/// undefined), but calls and the dynamic parts of refs are hoisted.
fn guard_term(term: &Term, out: &mut Vec<Guard>) {
    match &term.node {
        Node::Literal | Node::Opaque | Node::Var(_) => {}
        Node::Ref { dynamic } => dynamic.iter().for_each(|d| guard_index(d, out)),
        Node::Call { .. } | Node::Binary { .. } => guard_argument(term, out),
        Node::Composite(items) => items.iter().for_each(|i| guard_argument(i, out)),
    }
}

fn guard_index(term: &Term, out: &mut Vec<Guard>) {
    match &term.node {
        Node::Call { .. } | Node::Binary { .. } | Node::Ref { .. } => guard_argument(term, out),
        _ => {}
    }
}

/// The guards for the negated expression in `toks`. Unparseable expressions get none.
pub fn hoisted_terms(src: &str, toks: &[Token]) -> Vec<Guard> {
    let mut p = Parser { src, toks, pos: 0 };
    let Some(term) = p.expr(0) else {
        return Vec::new();
    };
    if p.pos != toks.len() {
        return Vec::new();
    }
    let mut out = Vec::new();
    match &term.node {
        Node::Binary { op, lhs, rhs } if op == "==" || op == "=" => {
            guard_term(lhs, &mut out);
            guard_term(rhs, &mut out);
        }
        Node::Binary { lhs, rhs, .. } => {
            guard_argument(lhs, &mut out);
            guard_argument(rhs, &mut out);
        }
        Node::Call { args } => args.iter().for_each(|a| guard_argument(a, &mut out)),
        _ => guard_term(&term, &mut out),
    }
    out
}
