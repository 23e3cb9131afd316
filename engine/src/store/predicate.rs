//! Lance SQL predicates built from values: quoting, so that a value is always a literal.

/// A SQL string literal: `'` doubled, so a value can never end the literal.
pub(crate) fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_cannot_end_the_literal() {
        assert_eq!(sql_string("plain"), "'plain'");
        assert_eq!(sql_string("x' OR '1'='1"), "'x'' OR ''1''=''1'");
        assert_eq!(sql_string(""), "''");
    }
}
