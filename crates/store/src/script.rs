//! Statements written together in one transaction, sent in as few round trips as the backend
//! allows.
//!
//! On SQLite every statement is a round trip between the caller's task and the connection's
//! worker thread (a channel send and a wake-up each way), and a write transaction holds the
//! database's only write lock through all of them: a ledger batch of a dozen statements spent
//! most of its time in those hand-offs. A joined script sends the statements as one
//! multi-statement text: each statement's `$N` placeholders are renumbered after the ones
//! before it, and SQLite binds every statement's parameters from the one argument list by
//! their numbers. PostgreSQL does not take several statements with parameters in one message,
//! so there each statement stays its own part.
//!
//! A long statement (a multi-row insert) goes alone and stays prepared; on SQLite, if its
//! placeholders run `$1…$n` in order, it is sent with anonymous `?` instead (bound in order),
//! because SQLite finds a numbered parameter by walking its list of names.
//!
//! The statements added must not contain `$` outside placeholders (in a string literal, say):
//! renumbering does not parse SQL.

use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Encode, Type};

/// Placeholders in one joined part at most (SQLite's default limit is 32,766).
const MAX_PLACEHOLDERS: usize = 32_000;
/// A statement with more placeholders than this is sent on its own and kept prepared: a joined
/// text is prepared again every time, and preparing a long multi-row statement (a busy
/// gateway's batch of 256 ledger entries) costs far more than the round trip it would save.
/// Multi-row statements come in power-of-two sizes, so their texts repeat.
const JOIN_AT_MOST: usize = 128;

/// One text sent in one round trip, with its arguments.
pub(crate) struct Part<'q, DB: Database> {
    pub(crate) sql: String,
    pub(crate) arguments: DB::Arguments<'q>,
    /// More than one statement: a text unlikely to repeat, so not worth a place in the
    /// connection's statement cache.
    pub(crate) joined: bool,
}

/// Statements collected for one transaction (see the module comment).
pub(crate) struct Script<'q, DB: Database> {
    join: bool,
    parts: Vec<Part<'q, DB>>,
    /// Placeholders in the last part, and whether it is a long statement alone.
    placeholders: usize,
    alone: bool,
    /// The last statement's placeholders, and the values bound to it so far.
    expected: usize,
    bound: usize,
    /// Statements added in all.
    total: usize,
    /// The first value that could not be encoded; reported by [`Script::into_parts`].
    error: Option<BoxDynError>,
}

impl<'q, DB: Database> Script<'q, DB> {
    /// An empty script; `join` sends its statements together (SQLite).
    pub(crate) fn new(join: bool) -> Self {
        Self { join, parts: Vec::new(), placeholders: 0, alone: false, expected: 0, bound: 0, total: 0, error: None }
    }

    /// Adds a statement whose placeholders are `$1…$n`; bind exactly its `n` values next, in
    /// order.
    pub(crate) fn statement(&mut self, sql: &str) -> &mut Self {
        self.check_bound();
        let count = highest_placeholder(sql);
        self.expected = count;
        self.bound = 0;
        self.total += 1;
        let long = count > JOIN_AT_MOST;
        let fits = self.join
            && !long
            && !self.alone
            && !self.parts.is_empty()
            && self.placeholders + count <= MAX_PLACEHOLDERS;
        if !fits {
            self.parts.push(Part {
                sql: String::with_capacity(sql.len()),
                arguments: Default::default(),
                joined: false,
            });
            self.placeholders = 0;
            self.alone = long;
        }
        let offset = self.placeholders;
        // SQLite finds a numbered parameter's name by a walk along the statement's list of
        // names, so binding a long statement's `$N` costs the square of its placeholders (a
        // 256-row insert: millions of steps at every commit). A long statement alone whose
        // placeholders run `$1…$n` in order is sent with anonymous `?` instead, bound in order.
        let anonymous = self.join && long && sequential(sql);
        if let Some(part) = self.parts.last_mut() {
            if !part.sql.is_empty() {
                part.sql.push_str(";\n");
                part.joined = true;
            }
            if anonymous {
                anonymize_into(&mut part.sql, sql);
            } else {
                renumber_into(&mut part.sql, sql, offset);
            }
        }
        self.placeholders += count;
        self
    }

    /// Binds the next value of the last statement.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, DB> + Type<DB>,
    {
        self.bound += 1;
        if let Some(part) = self.parts.last_mut()
            && let Err(error) = part.arguments.add(value)
        {
            self.error.get_or_insert(error);
        }
        self
    }

    /// A statement given fewer values than placeholders would have the rest bound as NULL (or
    /// the next statement's values shifted): refused instead.
    fn check_bound(&mut self) {
        if self.bound != self.expected && self.error.is_none() {
            let message = format!(
                "statement {} of the script was given {} value(s) for {} placeholder(s)",
                self.total, self.bound, self.expected
            );
            self.error = Some(message.into());
        }
    }

    /// The texts to send, in order; an error if a value could not be encoded.
    pub(crate) fn into_parts(mut self) -> Result<Vec<Part<'q, DB>>, BoxDynError> {
        self.check_bound();
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.parts),
        }
    }
}

/// Walks `sql` by its `$N` placeholders: `each` gets the text up to and including each `$`
/// with the number after it, then the rest with `None`. A `$` without a number stays text.
fn placeholders(sql: &str, mut each: impl FnMut(&str, Option<usize>)) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse() {
            Ok(n) => each(&rest[..=at], Some(n)),
            Err(_) => each(&rest[..at + 1 + digits], None),
        }
        rest = &after[digits..];
    }
    each(rest, None);
}

/// The highest `$N` in `sql` (0 without placeholders).
fn highest_placeholder(sql: &str) -> usize {
    let mut highest = 0;
    placeholders(sql, |_, n| highest = highest.max(n.unwrap_or(0)));
    highest
}

/// Whether `sql`'s placeholders are `$1, $2, …` in order, each once.
fn sequential(sql: &str) -> bool {
    let (mut next, mut ordered) = (1, true);
    placeholders(sql, |_, n| {
        if let Some(n) = n {
            ordered &= n == next;
            next += 1;
        }
    });
    ordered
}

/// Appends `sql` to `out` with every `$N` written as `?`.
fn anonymize_into(out: &mut String, sql: &str) {
    placeholders(sql, |text, n| match n {
        Some(_) => {
            out.push_str(text.strip_suffix('$').unwrap_or(text));
            out.push('?');
        }
        None => out.push_str(text),
    });
}

/// Appends `sql` to `out` with every `$N` written as `$(N + offset)`.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    use std::fmt::Write as _;
    placeholders(sql, |text, n| {
        out.push_str(text);
        if let Some(n) = n {
            let _ = write!(out, "{}", n + offset);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_after_the_statements_before() {
        let mut out = String::new();
        renumber_into(&mut out, "UPDATE t SET a = $2 WHERE id = $1 AND b = $12", 9);
        assert_eq!(out, "UPDATE t SET a = $11 WHERE id = $10 AND b = $21");
        assert_eq!(highest_placeholder("INSERT INTO t VALUES ($1, $3, $2)"), 3);
        assert_eq!(highest_placeholder("SELECT 1"), 0);
    }

    #[test]
    fn a_joined_script_is_one_part_and_an_unjoined_one_a_part_per_statement() {
        let build = |join: bool| {
            let mut script = Script::<sqlx::Sqlite>::new(join);
            script.statement("INSERT INTO a (x, y) VALUES ($1, $2)").bind(1_i64).bind("one");
            script.statement("UPDATE b SET z = $1").bind(2_i64);
            script.into_parts().map(|parts| parts.into_iter().map(|p| (p.sql, p.joined)).collect::<Vec<_>>())
        };
        let joined = build(true).map_err(|e| e.to_string());
        assert_eq!(joined, Ok(vec![("INSERT INTO a (x, y) VALUES ($1, $2);\nUPDATE b SET z = $3".to_owned(), true)]));
        let apart = build(false).map_err(|e| e.to_string());
        assert_eq!(
            apart,
            Ok(vec![
                ("INSERT INTO a (x, y) VALUES ($1, $2)".to_owned(), false),
                ("UPDATE b SET z = $1".to_owned(), false)
            ])
        );
    }

    #[test]
    fn a_statement_given_too_few_or_too_many_values_is_refused() {
        let mut short = Script::<sqlx::Sqlite>::new(true);
        short.statement("INSERT INTO a (x, y) VALUES ($1, $2)").bind(1_i64);
        short.statement("UPDATE b SET z = $1").bind(2_i64);
        let refused = short.into_parts().map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(refused, Err("statement 1 of the script was given 1 value(s) for 2 placeholder(s)".to_owned()));
        let mut long = Script::<sqlx::Postgres>::new(false);
        long.statement("UPDATE b SET z = $1").bind(2_i64).bind(3_i64);
        assert!(long.into_parts().is_err());
    }

    #[test]
    fn a_long_statement_goes_alone_and_short_ones_around_it_join() {
        let mut script = Script::<sqlx::Sqlite>::new(true);
        let short = "UPDATE s SET a = $1";
        let long = crate::rows::values_sql("INSERT INTO t (a) VALUES ", 1, 256, "");
        for sql in [short, short, long.as_str(), short, short] {
            script.statement(sql);
            for i in 0..highest_placeholder(sql) {
                script.bind(i as i64);
            }
        }
        let parts = script.into_parts().map_err(|e| e.to_string());
        let shape = parts.map(|p| p.iter().map(|p| (p.sql.matches(';').count() + 1, p.joined)).collect::<Vec<_>>());
        assert_eq!(shape, Ok(vec![(2, true), (1, false), (2, true)]));
    }

    #[test]
    fn a_long_statement_in_order_is_sent_with_anonymous_placeholders_on_sqlite_only() {
        let long: String = (1..=200).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let sql = format!("INSERT INTO t VALUES ({long})");
        for join in [true, false] {
            let mut script = Script::<sqlx::Sqlite>::new(join);
            script.statement(&sql);
            for n in 0..200_i64 {
                script.bind(n);
            }
            let parts = script.into_parts().expect("parts");
            let anonymous = parts[0].sql.contains('?');
            assert_eq!(anonymous, join, "{}", &parts[0].sql[..40]);
            if join {
                assert!(!parts[0].sql.contains('$'));
                assert_eq!(parts[0].sql.matches('?').count(), 200);
            }
        }
        // Out of order or repeated: kept numbered.
        let mut shuffled: Vec<String> = (1..=200).map(|n| format!("${n}")).collect();
        shuffled.swap(0, 1);
        assert!(!sequential(&shuffled.join(",")));
        assert!(!sequential("$1, $1"));
        assert!(sequential("a = $1 AND b = $2"));
    }

    #[test]
    fn a_joined_part_never_passes_the_placeholder_limit() {
        let mut script = Script::<sqlx::Sqlite>::new(true);
        let row = crate::rows::values_sql("INSERT INTO t (a, b, c, d) VALUES ", 4, 32, "");
        for _ in 0..300 {
            script.statement(&row);
            for i in 0..128_i64 {
                script.bind(i);
            }
        }
        let parts = script.into_parts().map_err(|e| e.to_string());
        assert_eq!(parts.map(|p| p.len()), Ok(2));
    }
}
