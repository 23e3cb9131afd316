//! WHERE clauses on `vector_search(...)` that can run inside the vector search: turned
//! into Lance SQL predicates (the ANN prefilter), every value re-quoted by us.

use crate::store::predicate::sql_string;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Like, Operator};

/// The Lance SQL of `expr` when every column it names is in `columns` and every part of
/// it has a faithful translation; `None` otherwise (DataFusion then filters after).
pub fn to_lance_sql(expr: &Expr, columns: &[&str]) -> Option<String> {
    match expr {
        Expr::Column(c) if columns.contains(&c.name.as_str()) => Some(quote_ident(&c.name)),
        Expr::Literal(value, _) => literal(value),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = match op {
                Operator::Eq => "=",
                Operator::NotEq => "!=",
                Operator::Lt => "<",
                Operator::LtEq => "<=",
                Operator::Gt => ">",
                Operator::GtEq => ">=",
                Operator::And => "AND",
                Operator::Or => "OR",
                _ => return None,
            };
            let l = to_lance_sql(left, columns)?;
            let r = to_lance_sql(right, columns)?;
            Some(format!("({l} {op} {r})"))
        }
        Expr::Not(inner) => Some(format!("(NOT {})", to_lance_sql(inner, columns)?)),
        Expr::IsNull(inner) => Some(format!("({} IS NULL)", to_lance_sql(inner, columns)?)),
        Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", to_lance_sql(inner, columns)?)),
        Expr::InList(list) => {
            let values: Option<Vec<String>> =
                list.list.iter().map(|e| to_lance_sql(e, columns)).collect();
            Some(format!(
                "({} {}IN ({}))",
                to_lance_sql(&list.expr, columns)?,
                if list.negated { "NOT " } else { "" },
                values?.join(", ")
            ))
        }
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char,
            case_insensitive: false,
        }) => {
            let escape = match escape_char {
                Some(c) => format!(" ESCAPE {}", sql_string(&c.to_string())),
                None => String::new(),
            };
            Some(format!(
                "({} {}LIKE {}{escape})",
                to_lance_sql(expr, columns)?,
                if *negated { "NOT " } else { "" },
                to_lance_sql(pattern, columns)?
            ))
        }
        _ => None,
    }
}

fn quote_ident(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

fn literal(value: &ScalarValue) -> Option<String> {
    Some(match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => sql_string(s),
        ScalarValue::Boolean(Some(b)) => b.to_string().to_uppercase(),
        ScalarValue::Int8(Some(v)) => v.to_string(),
        ScalarValue::Int16(Some(v)) => v.to_string(),
        ScalarValue::Int32(Some(v)) => v.to_string(),
        ScalarValue::Int64(Some(v)) => v.to_string(),
        ScalarValue::UInt8(Some(v)) => v.to_string(),
        ScalarValue::UInt16(Some(v)) => v.to_string(),
        ScalarValue::UInt32(Some(v)) => v.to_string(),
        ScalarValue::UInt64(Some(v)) => v.to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    const COLUMNS: &[&str] = &["language", "path", "start_line"];

    #[test]
    fn simple_predicates_translate_with_values_requoted() {
        let e = col("language")
            .eq(lit("rust"))
            .and(col("path").like(lit("src/%")))
            .and(col("start_line").gt(lit(10i64)));
        assert_eq!(
            to_lance_sql(&e, COLUMNS).unwrap(),
            "(((language = 'rust') AND (path LIKE 'src/%')) AND (start_line > 10))"
        );
        let e = col("language").eq(lit("x' OR '1'='1"));
        assert_eq!(
            to_lance_sql(&e, COLUMNS).unwrap(),
            "(language = 'x'' OR ''1''=''1')"
        );
        let e = col("language").in_list(vec![lit("go"), lit("c")], false);
        assert_eq!(
            to_lance_sql(&e, COLUMNS).unwrap(),
            "(language IN ('go', 'c'))"
        );
    }

    #[test]
    fn unknown_columns_and_functions_are_not_pushed() {
        assert!(to_lance_sql(&col("_distance").lt(lit(0.5f64)), COLUMNS).is_none());
        assert!(to_lance_sql(&col("other").eq(lit("x")), COLUMNS).is_none());
        let e = datafusion::functions::expr_fn::lower(col("path")).eq(lit("x"));
        assert!(to_lance_sql(&e, COLUMNS).is_none());
    }
}
