//! GROUP BY and aggregate functions.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;

use super::query::RowIter;
use crate::error::{SqlError, SqlResult};
use crate::expr::{AggCall, AggFunc, EvalEnv, Expr};
use crate::row::Row;
use crate::types::DataType;
use crate::value::Value;

/// Running state of one aggregate in one group (or window frame).
#[derive(Clone)]
pub(super) struct AggState {
    count: i64,
    value: Option<Value>,
    text: Option<String>,
    items: Vec<Value>,
    seen: Option<HashSet<Vec<u8>>>,
    /// For `agg(x ORDER BY ...)`: (sort values, arguments), fed in order
    /// at the end.
    ordered: Vec<(Vec<Value>, Vec<Value>)>,
}

impl AggState {
    pub(super) fn new(call: &AggCall) -> Self {
        AggState {
            count: 0,
            value: None,
            text: None,
            items: Vec::new(),
            seen: call.distinct.then(HashSet::new),
            ordered: Vec::new(),
        }
    }

    /// Buffers one row of an ordered aggregate.
    pub(super) fn add_ordered(&mut self, keys: Vec<Value>, args: Vec<Value>) {
        self.ordered.push((keys, args));
    }

    pub(super) fn add(&mut self, call: &AggCall, args: Vec<Value>) -> SqlResult<()> {
        if call.func == AggFunc::CountStar {
            self.count += 1;
            return Ok(());
        }
        let v = args.first().cloned().unwrap_or(Value::Null);
        if call.func == AggFunc::ArrayAgg {
            // array_agg keeps NULLs.
            self.count += 1;
            self.items.push(v);
            return Ok(());
        }
        if v.is_null() {
            return Ok(());
        }
        if let Some(seen) = &mut self.seen {
            let mut k = Vec::new();
            v.group_key(&mut k);
            if !seen.insert(k) {
                return Ok(());
            }
        }
        self.count += 1;
        match call.func {
            AggFunc::Count | AggFunc::CountStar | AggFunc::ArrayAgg => {}
            AggFunc::Sum | AggFunc::Avg => {
                self.value = Some(match (self.value.take(), v) {
                    (None, Value::Int(i)) => Value::Numeric(Decimal::from(i)),
                    (None, v) => v,
                    (Some(Value::Numeric(a)), Value::Int(i)) => {
                        Value::Numeric(a + Decimal::from(i))
                    }
                    (Some(Value::Numeric(a)), Value::Numeric(b)) => Value::Numeric(
                        a.checked_add(b)
                            .ok_or_else(|| SqlError::out_of_range("numeric"))?,
                    ),
                    (Some(Value::Float(a)), Value::Float(b)) => Value::Float(a + b),
                    (Some(a), b) => {
                        return Err(SqlError::internal(format!("cannot sum {a:?} and {b:?}")))
                    }
                });
            }
            AggFunc::Min | AggFunc::Max => {
                let replace = match &self.value {
                    None => true,
                    Some(cur) => {
                        let o = crate::expr::compare(&v, cur, &crate::value::TimeZone::default())?;
                        if call.func == AggFunc::Min {
                            o.is_lt()
                        } else {
                            o.is_gt()
                        }
                    }
                };
                if replace {
                    self.value = Some(v);
                }
            }
            AggFunc::BoolAnd | AggFunc::BoolOr => {
                let b = v.is_true();
                self.value = Some(Value::Bool(match (&self.value, call.func) {
                    (None, _) => b,
                    (Some(Value::Bool(cur)), AggFunc::BoolAnd) => *cur && b,
                    (Some(Value::Bool(cur)), _) => *cur || b,
                    _ => b,
                }));
            }
            AggFunc::StringAgg => {
                let sep = match args.get(1) {
                    Some(Value::Text(s)) => s.clone(),
                    _ => String::new(),
                };
                let s = match v {
                    Value::Text(s) => s,
                    other => format!("{other:?}"),
                };
                match &mut self.text {
                    None => self.text = Some(s),
                    Some(t) => {
                        t.push_str(&sep);
                        t.push_str(&s);
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn finish(mut self, call: &AggCall) -> SqlResult<Value> {
        if !self.ordered.is_empty() {
            let mut rows = std::mem::take(&mut self.ordered);
            rows.sort_by(|(a, _), (b, _)| super::query::sort_cmp(a, b, &call.order_by));
            for (_, args) in rows {
                self.add(call, args)?;
            }
        }
        Ok(match call.func {
            AggFunc::Count | AggFunc::CountStar => Value::Int(self.count),
            AggFunc::Sum => match (self.value, &call.ty) {
                (None, _) => Value::Null,
                (Some(Value::Numeric(d)), DataType::Int8) => {
                    Value::Int(i64::try_from(d).map_err(|_| SqlError::out_of_range("bigint"))?)
                }
                (Some(v), _) => v,
            },
            AggFunc::Avg => match self.value {
                None => Value::Null,
                Some(Value::Float(f)) => Value::Float(f / self.count as f64),
                Some(Value::Numeric(d)) => {
                    let n = Decimal::from(self.count);
                    let q = d
                        .checked_div(n)
                        .ok_or_else(|| SqlError::out_of_range("numeric"))?;
                    Value::Numeric(crate::expr::numeric_div_scale(q, &d, &n))
                }
                Some(other) => other,
            },
            AggFunc::Min | AggFunc::Max | AggFunc::BoolAnd | AggFunc::BoolOr => {
                self.value.unwrap_or(Value::Null)
            }
            AggFunc::StringAgg => self.text.map(Value::Text).unwrap_or(Value::Null),
            AggFunc::ArrayAgg if self.count == 0 => Value::Null,
            AggFunc::ArrayAgg => Value::Array(self.items),
        })
    }
}

/// Groups the input and computes the aggregates. Output rows: the group-by
/// values followed by the aggregate results, in first-seen group order.
pub fn aggregate(
    input: RowIter,
    group_by: &[Expr],
    aggs: &[AggCall],
    env: &EvalEnv,
) -> SqlResult<Vec<Row>> {
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut groups: Vec<(Row, Vec<AggState>)> = Vec::new();
    for row in input {
        let row = row?;
        let keys = group_by
            .iter()
            .map(|g| g.eval(&row, env))
            .collect::<SqlResult<Vec<_>>>()?;
        let mut k = Vec::new();
        for v in &keys {
            v.group_key(&mut k);
        }
        let gi = match index.get(&k) {
            Some(&i) => i,
            None => {
                groups.push((keys, aggs.iter().map(AggState::new).collect()));
                index.insert(k, groups.len() - 1);
                groups.len() - 1
            }
        };
        for (state, call) in groups[gi].1.iter_mut().zip(aggs) {
            if let Some(filter) = &call.filter {
                if !filter.eval(&row, env)?.is_true() {
                    continue;
                }
            }
            let args = call
                .args
                .iter()
                .map(|a| a.eval(&row, env))
                .collect::<SqlResult<Vec<_>>>()?;
            if call.order_by.is_empty() {
                state.add(call, args)?;
            } else {
                let keys = call
                    .order_by
                    .iter()
                    .map(|k| k.expr.eval(&row, env))
                    .collect::<SqlResult<Vec<_>>>()?;
                state.add_ordered(keys, args);
            }
        }
    }
    // Without GROUP BY, an empty input still yields one row.
    if groups.is_empty() && group_by.is_empty() {
        groups.push((vec![], aggs.iter().map(AggState::new).collect()));
    }
    groups
        .into_iter()
        .map(|(mut keys, states)| {
            for (state, call) in states.into_iter().zip(aggs) {
                keys.push(state.finish(call)?);
            }
            Ok(keys)
        })
        .collect()
}
