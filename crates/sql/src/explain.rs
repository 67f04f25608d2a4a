//! EXPLAIN: the plan tree as text, in PostgreSQL's layout, so that users
//! (and tests) can see which index a query uses.

use crate::catalog::TableDef;
use crate::plan::{JoinKind, KeyRange, Plan};
use crate::planner::{DeletePlan, UpdatePlan};

fn scan_lines(
    table: &TableDef,
    index: Option<&crate::catalog::IndexDef>,
    range: &KeyRange,
) -> Vec<String> {
    if range.is_full() {
        return vec![format!("Seq Scan on {}", table.name)];
    }
    let ix = index.unwrap_or(&table.primary);
    let names: Vec<&str> = ix
        .columns
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect();
    let mut cond: Vec<String> = names
        .iter()
        .take(range.eq.len())
        .map(|n| format!("{n} = ?"))
        .collect();
    if let Some(col) = names.get(range.eq.len()) {
        if let Some((_, inclusive)) = &range.lower {
            cond.push(format!("{col} {} ?", if *inclusive { ">=" } else { ">" }));
        }
        if let Some((_, inclusive)) = &range.upper {
            cond.push(format!("{col} {} ?", if *inclusive { "<=" } else { "<" }));
        }
    }
    vec![
        format!("Index Scan using {} on {}", ix.name, table.name),
        format!("  Index Cond: ({})", cond.join(" AND ")),
    ]
}

/// Renders a plan; `depth` 0 is the top node.
pub fn explain_plan(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    render(plan, 0, &mut out);
    out
}

fn push_node(out: &mut Vec<String>, depth: usize, lines: Vec<String>) {
    let indent = if depth == 0 {
        String::new()
    } else {
        format!("  {}->  ", "      ".repeat(depth - 1))
    };
    let detail_indent = " ".repeat(indent.len());
    for (i, l) in lines.into_iter().enumerate() {
        out.push(if i == 0 {
            format!("{indent}{l}")
        } else {
            format!("{detail_indent}{l}")
        });
    }
}

fn render(plan: &Plan, depth: usize, out: &mut Vec<String>) {
    match plan {
        Plan::Empty => push_node(out, depth, vec!["Result".into()]),
        Plan::Values { rows, .. } => push_node(
            out,
            depth,
            vec![format!("Values Scan ({} rows)", rows.len())],
        ),
        Plan::Scan {
            table,
            index,
            range,
        } => push_node(out, depth, scan_lines(table, index.as_ref(), range)),
        Plan::Series { .. } => {
            push_node(out, depth, vec!["Function Scan on generate_series".into()])
        }
        Plan::Rows(rows) => push_node(out, depth, vec![format!("LockRows ({} rows)", rows.len())]),
        Plan::Unnest { .. } => push_node(out, depth, vec!["Function Scan on unnest".into()]),
        Plan::Virtual(vt) => push_node(out, depth, vec![format!("Seq Scan on {}", vt.name)]),
        Plan::Filter { input, .. } => {
            // Shown as a detail of the node it filters, as PostgreSQL does.
            let start = out.len();
            render(input, depth, out);
            let indent = if depth == 0 { 2 } else { 6 * (depth - 1) + 8 };
            out.insert(
                (start + 1).min(out.len()),
                format!("{}Filter: (...)", " ".repeat(indent)),
            );
        }
        Plan::Project { input, .. } | Plan::Truncate { input, .. } => render(input, depth, out),
        Plan::Join {
            left, right, kind, ..
        } => {
            let name = match kind {
                JoinKind::Inner => "Nested Loop",
                JoinKind::Left => "Nested Loop Left Join",
                JoinKind::Full { .. } => "Nested Loop Full Join",
            };
            push_node(out, depth, vec![name.into()]);
            render(left, depth + 1, out);
            render(right, depth + 1, out);
        }
        Plan::Aggregate {
            input, group_by, ..
        } => {
            push_node(
                out,
                depth,
                vec![if group_by.is_empty() {
                    "Aggregate"
                } else {
                    "HashAggregate"
                }
                .into()],
            );
            render(input, depth + 1, out);
        }
        Plan::Sort { input, .. } => {
            push_node(out, depth, vec!["Sort".into()]);
            render(input, depth + 1, out);
        }
        Plan::Limit { input, .. } => {
            push_node(out, depth, vec!["Limit".into()]);
            render(input, depth + 1, out);
        }
        Plan::Distinct { input } => {
            push_node(out, depth, vec!["HashAggregate (distinct)".into()]);
            render(input, depth + 1, out);
        }
        Plan::SetOp { left, right, .. } => {
            push_node(out, depth, vec!["Append".into()]);
            render(left, depth + 1, out);
            render(right, depth + 1, out);
        }
        Plan::RecursiveUnion { anchor, step, .. } => {
            push_node(out, depth, vec!["Recursive Union".into()]);
            render(anchor, depth + 1, out);
            render(step, depth + 1, out);
        }
        Plan::WorkTable { .. } => push_node(out, depth, vec!["WorkTable Scan".into()]),
        Plan::Window { input, .. } => {
            push_node(out, depth, vec!["WindowAgg".into()]);
            render(input, depth + 1, out);
        }
        Plan::ProjectSet { input, .. } => {
            push_node(out, depth, vec!["ProjectSet".into()]);
            render(input, depth + 1, out);
        }
    }
}

pub fn explain_update(p: &UpdatePlan) -> Vec<String> {
    let mut out = vec![format!("Update on {}", p.table.name)];
    push_child_scan(&mut out, &p.table, p.index.as_ref(), &p.range);
    out
}

pub fn explain_delete(p: &DeletePlan) -> Vec<String> {
    let mut out = vec![format!("Delete on {}", p.table.name)];
    push_child_scan(&mut out, &p.table, p.index.as_ref(), &p.range);
    out
}

fn push_child_scan(
    out: &mut Vec<String>,
    table: &TableDef,
    index: Option<&crate::catalog::IndexDef>,
    range: &KeyRange,
) {
    push_node(out, 1, scan_lines(table, index, range));
}
