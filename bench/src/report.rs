//! The results: `bench/results.json` and the table printed at the end.

use serde_json::{Map, Value, json};

/// One headline figure, its target and whether it is met.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Key in the results file.
    pub key: &'static str,
    /// What it is.
    pub label: &'static str,
    /// The figure (`None` when its section did not run).
    pub value: Option<f64>,
    /// The target, as text.
    pub target: Option<Target>,
}

/// A bound a figure should respect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
}

impl Target {
    /// Whether `value` meets it.
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Self::AtLeast(t) => value >= t,
            Self::AtMost(t) => value <= t,
        }
    }

    fn text(self) -> String {
        match self {
            Self::AtLeast(t) => format!(">= {}", number(t)),
            Self::AtMost(t) => format!("<= {}", number(t)),
        }
    }
}

/// A figure printed with sensible precision.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1000.0 {
        let whole = value.round() as i64;
        let digits = whole.abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if whole < 0 { format!("-{grouped}") } else { grouped }
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 0.01 || magnitude == 0.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.6}")
    }
}

fn status(row: &Row) -> &'static str {
    match (row.value, row.target) {
        (None, _) => "not run",
        (Some(_), None) => "",
        (Some(v), Some(t)) if t.met_by(v) => "met",
        (Some(_), Some(_)) => "NOT MET",
    }
}

/// The table as plain text for the terminal.
pub fn text_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.label.to_owned(),
                r.value.map_or_else(|| "-".into(), number),
                r.target.map_or_else(String::new, Target::text),
                status(r).to_owned(),
            ]
        })
        .collect();
    let header = [
        "figure".to_owned(),
        "value".to_owned(),
        "target".to_owned(),
        String::new(),
    ];
    let widths: Vec<usize> = (0..4)
        .map(|i| cells.iter().chain([&header]).map(|c| c[i].len()).max().unwrap_or(0))
        .collect();
    let line = |c: &[String; 4]| {
        format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
        .trim_end()
        .to_owned()
    };
    let mut out = vec![line(&header)];
    out.extend(cells.iter().map(line));
    out.join("\n")
}

/// The table as Markdown, for the README.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = vec![
        "| figure | value | target |".to_owned(),
        "| --- | ---: | --- |".to_owned(),
    ];
    for r in rows {
        let target = r
            .target
            .map_or_else(String::new, |t| format!("{} ({})", t.text(), status(r)));
        out.push(format!(
            "| {} | {} | {} |",
            r.label,
            r.value.map_or_else(|| "-".into(), number),
            target
                .replace('<', "&le;")
                .replace(">=", "&ge;")
                .replace("&le;=", "&le;")
        ));
    }
    out.join("\n")
}

/// The results document: headline keys at the top level, then the details.
pub fn document(header: Map<String, Value>, rows: &[Row], details: Map<String, Value>) -> Value {
    let mut doc = header;
    for row in rows {
        doc.insert(row.key.to_owned(), row.value.map_or(Value::Null, |v| json!(v)));
    }
    let targets: Map<String, Value> = rows
        .iter()
        .filter_map(|r| r.target.map(|t| (r.key.to_owned(), json!(t.text()))))
        .collect();
    doc.insert("targets".into(), Value::Object(targets));
    doc.extend(details);
    Value::Object(doc)
}

/// `YYYY-MM-DD` of a Unix time (UTC), by the civil-from-days algorithm.
pub fn utc_date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_704_067_199), "2023-12-31");
        assert_eq!(utc_date(1_704_067_200), "2024-01-01");
    }

    #[test]
    fn numbers() {
        assert_eq!(number(1_234_567.8), "1,234,568");
        assert_eq!(number(-4_321.0), "-4,321");
        assert_eq!(number(999.94), "999.9");
        assert_eq!(number(0.8123), "0.81");
        assert_eq!(number(0.004_567_1), "0.004567");
        assert_eq!(number(0.0), "0.00");
    }

    fn rows() -> Vec<Row> {
        vec![
            Row {
                key: "a",
                label: "ratio",
                value: Some(0.9),
                target: Some(Target::AtLeast(0.8)),
            },
            Row {
                key: "b",
                label: "cost",
                value: Some(0.02),
                target: Some(Target::AtMost(0.01)),
            },
            Row {
                key: "c",
                label: "skipped",
                value: None,
                target: None,
            },
        ]
    }

    #[test]
    fn tables_say_what_is_met() {
        let text = text_table(&rows());
        assert!(text.lines().nth(1).unwrap().ends_with("met"));
        assert!(text.lines().nth(2).unwrap().ends_with("NOT MET"));
        assert!(text.lines().nth(3).unwrap().ends_with("not run"));
        let md = markdown_table(&rows());
        assert!(md.contains("| ratio | 0.90 | &ge; 0.80 (met) |"), "{md}");
        assert!(md.contains("| cost | 0.02 | &le; 0.01 (NOT MET) |"), "{md}");
    }

    #[test]
    fn document_has_every_key_and_the_targets() {
        let mut header = Map::new();
        header.insert("cores".into(), json!(2));
        let mut details = Map::new();
        details.insert("apply".into(), json!({"runs": []}));
        let doc = document(header, &rows(), details);
        assert_eq!(doc["cores"], json!(2));
        assert_eq!(doc["a"], json!(0.9));
        assert_eq!(doc["c"], Value::Null);
        assert_eq!(doc["targets"]["b"], json!("<= 0.01"));
        assert!(doc["apply"].is_object());
    }
}
