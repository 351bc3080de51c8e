//! TraceQL, the part people use: spanset filters over intrinsics and scoped attributes, spanset and
//! structural operators, and pipelines with `count()`, `avg|min|max|sum(...)`, `by(...)` and
//! `select(...)`. `lexer` and `parser` (hand-written recursive descent: see collector/DESIGN.md) build an
//! `ast::Query`; `plan` derives the store conditions that find candidate traces; `eval` runs the query on
//! each candidate. Anything outside the subset is a `ParseError` that says where and what was expected.

pub mod ast;
pub mod eval;
mod lexer;
mod parser;
pub mod plan;

pub use eval::{Spanset, TraceView};
pub use parser::{parse, parse_field};

/// Why a query was refused: where (byte offset, line and column, 1-based), what was expected there and
/// what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
    pub expected: String,
    pub found: String,
}

impl ParseError {
    pub(crate) fn at(src: &str, offset: usize, expected: &str, found: String) -> Self {
        let before = src.get(..offset).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        Self {
            offset,
            line,
            column,
            expected: expected.to_string(),
            found,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "parse error at line {}, col {}: expected {}, found {}",
            self.line, self.column, self.expected, self.found
        )
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests;
