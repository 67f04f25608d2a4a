//! Bounded recursion: no statement can overflow a session thread's stack.
//!
//! Two guards, as PostgreSQL has `check_stack_depth()` and its parser's
//! limits:
//!
//! * Before parsing, [`check_statement`] bounds how deep the syntax tree of
//!   a statement can be, from its tokens alone. sqlparser builds a chain
//!   `a + b + c ...` in a loop, so its recursion limit does not bound the
//!   tree, yet dropping, cloning or walking that tree recurses once per
//!   term: a tree too deep is never built.
//! * While binding, planning and evaluating, [`check_stack`] compares the
//!   stack left on this thread with a red zone, so recursion over a tree
//!   that passed the first guard ends in `54001`, not in an abort. Session
//!   threads are started with [`session_stack_size`] bytes of stack.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{SqlError, SqlResult, SqlState};

/// PostgreSQL's default `max_stack_depth` is 2MB; duet's recursion
/// (especially in a debug build) takes more stack per level, so its
/// default is larger. See [`session_stack_size`].
pub const DEFAULT_MAX_STACK_DEPTH: usize = 16 << 20;

/// Stack kept free below the deepest point a guard allows: what the code
/// between two checks, the error's construction and unchecked leaf calls
/// (formatting, regex compilation, RocksDB reads) may take.
pub const RED_ZONE: usize = 1 << 20;

/// Deepest syntax tree a statement may produce, in nodes from the root
/// (see [`tree_depth_bound`]). Dropping or cloning a tree this deep takes
/// a few MB of stack; binding it is bounded by [`check_stack`] instead.
pub const MAX_TREE_DEPTH: usize = 100_000;

/// Deepest nesting of parenthesized expressions and subqueries the parser
/// descends into (sqlparser's recursion limit; its recursion grows its own
/// stack, so this bounds the tree, not the stack). Past it the client gets
/// 42601 "memory exhausted", as from PostgreSQL's parser, whose stack holds
/// 10,000 entries: 9,999 nested parentheses parse on both.
pub const MAX_PARSER_NESTING: usize = 10_000;

/// The node's `max_stack_depth`, set once at start (see
/// [`set_max_stack_depth`]), shown by SHOW and in the error's hint.
static MAX_STACK_DEPTH: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_STACK_DEPTH);

/// Records the node's `max_stack_depth`; the node starts the threads that
/// run sessions with [`session_stack_size`] of it.
pub fn set_max_stack_depth(bytes: usize) {
    MAX_STACK_DEPTH.store(bytes, Ordering::Relaxed);
}

pub fn max_stack_depth() -> usize {
    MAX_STACK_DEPTH.load(Ordering::Relaxed)
}

/// `max_stack_depth` as SHOW prints it (PostgreSQL's unit is kB).
pub fn show_max_stack_depth() -> String {
    format!("{}kB", max_stack_depth() / 1024)
}

/// The stack a thread that runs sessions needs for `max_stack_depth`.
pub fn session_stack_size(max_stack_depth: usize) -> usize {
    max_stack_depth + RED_ZONE
}

/// PostgreSQL's error for recursion past the limit, with its hint.
pub fn stack_depth_exceeded() -> SqlError {
    SqlError::new(SqlState::STATEMENT_TOO_COMPLEX, "stack depth limit exceeded").with_hint(
        format!(
            "Increase the configuration parameter \"max_stack_depth\" (currently {}), \
             after ensuring the platform's stack depth limit is adequate.",
            show_max_stack_depth()
        ),
    )
}

/// Fails with 54001 when this thread's stack is nearly used up. Call it at
/// the top of every function that recurses over a client's input.
#[inline]
pub fn check_stack() -> SqlResult<()> {
    match stacker::remaining_stack() {
        Some(left) if left < RED_ZONE => Err(stack_depth_exceeded()),
        _ => Ok(()),
    }
}

/// Refuses a statement whose syntax tree could be deeper than
/// [`MAX_TREE_DEPTH`], before sqlparser builds it.
pub fn check_statement(sql: &str) -> SqlResult<()> {
    // A tree has at most one node per token, and at least one byte per token.
    if sql.len() <= MAX_TREE_DEPTH {
        return Ok(());
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    if tree_depth_bound(&tokens) > MAX_TREE_DEPTH {
        return Err(stack_depth_exceeded());
    }
    Ok(())
}

/// An upper bound on the depth of the syntax tree parsed from `tokens`
/// (within a constant per level of the parser's own recursion).
///
/// A list element (the tokens between two commas at one level of
/// parentheses) can be a chain of at most as many nodes as it has tokens,
/// and a parenthesized group nests inside the element it is part of: so
/// the bound is, over every path of nested groups, the sum of the token
/// counts of the elements on it. `IN (1, 2, ...)` and `VALUES (...), (...)`
/// stay shallow however long they are; `1 + 1 + ...` is as deep as it is
/// long.
pub fn tree_depth_bound(tokens: &[Token]) -> usize {
    #[derive(Default)]
    struct Group {
        /// Tokens of the current element, and its deepest nested group.
        element: usize,
        nested: usize,
        /// Deepest completed element.
        deepest: usize,
    }
    let mut groups = vec![Group::default()];
    for token in tokens {
        match token {
            Token::Whitespace(_) => {}
            Token::LParen | Token::LBracket | Token::LBrace => groups.push(Group::default()),
            Token::RParen | Token::RBracket | Token::RBrace if groups.len() > 1 => {
                let g = groups.pop().unwrap_or_default();
                let depth = g.deepest.max(g.element + g.nested) + 1;
                if let Some(outer) = groups.last_mut() {
                    outer.element += 1;
                    outer.nested = outer.nested.max(depth);
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(g) = groups.last_mut() {
                    g.deepest = g.deepest.max(g.element + g.nested);
                    g.element = 0;
                    g.nested = 0;
                }
            }
            _ => {
                if let Some(g) = groups.last_mut() {
                    g.element += 1;
                }
            }
        }
    }
    // Unclosed groups (a syntax error to come) still count.
    let mut depth = 0;
    while let Some(g) = groups.pop() {
        depth = g.deepest.max(g.element + g.nested.max(depth)) + 1;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(sql: &str) -> usize {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().unwrap();
        tree_depth_bound(&tokens)
    }

    #[test]
    fn chains_count_every_term_and_lists_only_their_longest_element() {
        let chain = format!("SELECT 1{}", "+1".repeat(1000));
        assert!(bound(&chain) > 2000);
        let list = format!("SELECT 1 IN (1{})", ",1".repeat(100_000));
        assert!(bound(&list) < 10, "{}", bound(&list));
        let rows = format!("INSERT INTO t VALUES (1, 'a'){}", ", (2, 'b')".repeat(100_000));
        assert!(bound(&rows) < 10, "{}", bound(&rows));
    }

    #[test]
    fn nested_groups_add_up_along_a_path() {
        // (((1+1)+1)+1): the innermost element is three groups down.
        assert!(bound("SELECT (((1+1)+1)+1)") >= 7);
        let nested = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(bound(&nested) > 500);
        // A chain after a group still encloses it.
        assert!(bound(&format!("SELECT (1){}", "+1".repeat(50))) > 100);
        // Unbalanced input is bounded too.
        assert!(bound(&format!("SELECT {}1", "(".repeat(300))) > 300);
    }

    #[test]
    fn long_statements_past_the_bound_are_refused_short_ones_never_tokenized() {
        let chain = format!("SELECT 1{}", "+1".repeat(MAX_TREE_DEPTH));
        let e = check_statement(&chain).unwrap_err();
        assert_eq!(e.state, SqlState::STATEMENT_TOO_COMPLEX);
        assert!(check_statement("SELECT 1 +").is_ok());
        let list = format!("SELECT 1 IN (1{})", ",1".repeat(MAX_TREE_DEPTH));
        assert!(check_statement(&list).is_ok());
    }

    #[test]
    fn the_stack_guard_fails_before_the_stack_runs_out() {
        fn recurse(n: u64) -> SqlResult<u64> {
            check_stack()?;
            let pad = [n; 64];
            Ok(recurse(n + 1)? + std::hint::black_box(pad)[0])
        }
        let e = std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| recurse(0))
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.state, SqlState::STATEMENT_TOO_COMPLEX);
    }
}
