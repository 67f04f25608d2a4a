//! Window functions: each call partitions the (materialized) input, sorts
//! each partition by its ORDER BY, and gives every row a value computed
//! from its partition: a rank, a neighbour's value, or an aggregate over
//! the row's frame. Output rows keep the input order, each extended by one
//! value per call.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::aggregate::AggState;
use super::query::sort_cmp;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{AggCall, EvalEnv, FrameBound, WindowCall, WindowFunc};
use crate::row::Row;
use crate::value::Value;

pub(super) fn window(
    mut rows: Vec<Row>,
    calls: &[WindowCall],
    env: &EvalEnv,
) -> SqlResult<Vec<Row>> {
    for call in calls {
        let values = evaluate(&rows, call, env)?;
        for (row, v) in rows.iter_mut().zip(values) {
            row.push(v);
        }
    }
    Ok(rows)
}

/// One value per input row for `call`.
fn evaluate(rows: &[Row], call: &WindowCall, env: &EvalEnv) -> SqlResult<Vec<Value>> {
    // Partitions, in first-seen order.
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut partitions: Vec<Vec<usize>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut key = Vec::new();
        for e in &call.partition_by {
            e.eval(row, env)?.group_key(&mut key);
        }
        let p = *index.entry(key).or_insert_with(|| {
            partitions.push(Vec::new());
            partitions.len() - 1
        });
        partitions[p].push(i);
    }
    let mut out = vec![Value::Null; rows.len()];
    for members in partitions {
        env.check_interrupt()?;
        // Sort keys once per row, then a stable sort of the members.
        let keys: Vec<Vec<Value>> = members
            .iter()
            .map(|&i| {
                call.order_by
                    .iter()
                    .map(|k| k.expr.eval(&rows[i], env))
                    .collect()
            })
            .collect::<SqlResult<_>>()?;
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| sort_cmp(&keys[a], &keys[b], &call.order_by));
        let sorted: Vec<usize> = order.iter().map(|&k| members[k]).collect();
        let sorted_keys: Vec<&Vec<Value>> = order.iter().map(|&k| &keys[k]).collect();
        let peers = peer_groups(&sorted_keys, call);
        let values = partition_values(rows, &sorted, &peers, call, env)?;
        for (&row, v) in sorted.iter().zip(values) {
            out[row] = v;
        }
    }
    Ok(out)
}

/// For each position, the index of its peer group (rows equal in ORDER BY).
fn peer_groups(keys: &[&Vec<Value>], call: &WindowCall) -> Vec<usize> {
    let mut groups = Vec::with_capacity(keys.len());
    let mut g = 0;
    for i in 0..keys.len() {
        if i > 0 && sort_cmp(keys[i - 1], keys[i], &call.order_by) != Ordering::Equal {
            g += 1;
        }
        groups.push(g);
    }
    groups
}

fn arg(rows: &[Row], row: usize, call: &WindowCall, n: usize, env: &EvalEnv) -> SqlResult<Value> {
    match call.args.get(n) {
        Some(e) => e.eval(&rows[row], env),
        None => Ok(Value::Null),
    }
}

fn partition_values(
    rows: &[Row],
    sorted: &[usize],
    peers: &[usize],
    call: &WindowCall,
    env: &EvalEnv,
) -> SqlResult<Vec<Value>> {
    let n = sorted.len();
    let group_count = peers.last().map_or(0, |g| g + 1);
    // First and last position of each peer group.
    let mut group_start = vec![0; group_count];
    let mut group_end = vec![0; group_count];
    for (i, &g) in peers.iter().enumerate() {
        if i == 0 || peers[i - 1] != g {
            group_start[g] = i;
        }
        group_end[g] = i;
    }
    let mut out = Vec::with_capacity(n);
    match call.func {
        WindowFunc::RowNumber => out.extend((1..=n as i64).map(Value::Int)),
        WindowFunc::Rank => {
            out.extend(peers.iter().map(|&g| Value::Int(group_start[g] as i64 + 1)))
        }
        WindowFunc::DenseRank => out.extend(peers.iter().map(|&g| Value::Int(g as i64 + 1))),
        WindowFunc::PercentRank => out.extend(peers.iter().map(|&g| {
            Value::Float(if n <= 1 {
                0.0
            } else {
                group_start[g] as f64 / (n - 1) as f64
            })
        })),
        WindowFunc::CumeDist => out.extend(
            peers
                .iter()
                .map(|&g| Value::Float((group_end[g] + 1) as f64 / n as f64)),
        ),
        WindowFunc::Ntile => {
            for i in 0..n {
                let buckets = match arg(rows, sorted[i], call, 0, env)? {
                    Value::Int(b) if b > 0 => b as usize,
                    Value::Null => {
                        out.push(Value::Null);
                        continue;
                    }
                    _ => {
                        return Err(SqlError::new(
                            SqlState("22014"),
                            "argument of ntile must be greater than zero",
                        ))
                    }
                };
                // The first n % buckets buckets get one extra row.
                let (size, extra) = (n / buckets, n % buckets);
                let big = extra * (size + 1);
                let bucket = if i < big {
                    i / (size + 1)
                } else {
                    extra + (i - big) / size.max(1)
                };
                out.push(Value::Int(bucket as i64 + 1));
            }
        }
        WindowFunc::Lag | WindowFunc::Lead => {
            for i in 0..n {
                let offset = match arg(rows, sorted[i], call, 1, env)? {
                    Value::Int(o) => o,
                    Value::Null if call.args.len() > 1 => {
                        out.push(Value::Null);
                        continue;
                    }
                    _ if call.args.len() > 1 => {
                        return Err(SqlError::new(
                            SqlState::INVALID_PARAMETER_VALUE,
                            "lag and lead offsets must be integers",
                        ))
                    }
                    _ => 1,
                };
                let target = if call.func == WindowFunc::Lag {
                    (i as i64).saturating_sub(offset)
                } else {
                    (i as i64).saturating_add(offset)
                };
                out.push(match usize::try_from(target).ok().filter(|&t| t < n) {
                    Some(t) => arg(rows, sorted[t], call, 0, env)?,
                    None => arg(rows, sorted[i], call, 2, env)?,
                });
            }
        }
        WindowFunc::FirstValue | WindowFunc::LastValue | WindowFunc::NthValue => {
            for i in 0..n {
                let range = frame(i, n, peers, &group_start, &group_end, call);
                let pick = match (call.func, range) {
                    (_, None) => None,
                    (WindowFunc::FirstValue, Some((start, _))) => Some(start),
                    (WindowFunc::LastValue, Some((_, end))) => Some(end),
                    (_, Some((start, end))) => match arg(rows, sorted[i], call, 1, env)? {
                        Value::Int(k) if k > 0 => {
                            let t = start + k as usize - 1;
                            (t <= end).then_some(t)
                        }
                        _ => {
                            return Err(SqlError::new(
                                SqlState("22016"),
                                "argument of nth_value must be greater than zero",
                            ))
                        }
                    },
                };
                out.push(match pick {
                    Some(t) => arg(rows, sorted[t], call, 0, env)?,
                    None => Value::Null,
                });
            }
        }
        WindowFunc::Aggregate(func) => {
            let agg = AggCall {
                func,
                args: call.args.clone(),
                distinct: call.distinct,
                filter: None,
                order_by: Vec::new(),
                ty: call.ty.clone(),
            };
            let args_of = |pos: usize| -> SqlResult<Vec<Value>> {
                call.args
                    .iter()
                    .map(|a| a.eval(&rows[sorted[pos]], env))
                    .collect()
            };
            // Frames that start at the partition's first row grow
            // monotonically: one running state serves them all.
            let running = call.frame.start == FrameBound::UnboundedPreceding;
            let mut state = AggState::new(&agg);
            let mut fed = 0;
            for i in 0..n {
                let value = match frame(i, n, peers, &group_start, &group_end, call) {
                    None => AggState::new(&agg).finish(&agg)?,
                    Some((_, end)) if running => {
                        while fed <= end {
                            state.add(&agg, args_of(fed)?)?;
                            fed += 1;
                        }
                        state.clone().finish(&agg)?
                    }
                    Some((start, end)) => {
                        let mut s = AggState::new(&agg);
                        for pos in start..=end {
                            s.add(&agg, args_of(pos)?)?;
                        }
                        s.finish(&agg)?
                    }
                };
                out.push(value);
            }
        }
    }
    Ok(out)
}

/// A frame offset as a signed row count (huge offsets saturate).
fn clamp(k: u64) -> i64 {
    k.min(i64::MAX as u64) as i64
}

/// The frame of position `i`: its first and last position, None if empty.
fn frame(
    i: usize,
    n: usize,
    peers: &[usize],
    group_start: &[usize],
    group_end: &[usize],
    call: &WindowCall,
) -> Option<(usize, usize)> {
    let f = call.frame;
    let g = peers[i];
    let groups = group_start.len();
    let position = |bound: FrameBound, is_start: bool| -> i64 {
        match (bound, f.rows) {
            (FrameBound::UnboundedPreceding, _) => 0,
            (FrameBound::UnboundedFollowing, _) => n as i64 - 1,
            (FrameBound::CurrentRow, true) => i as i64,
            (FrameBound::CurrentRow, false) => {
                if is_start {
                    group_start[g] as i64
                } else {
                    group_end[g] as i64
                }
            }
            (FrameBound::Preceding(k), true) => (i as i64).saturating_sub(clamp(k)),
            (FrameBound::Following(k), true) => (i as i64).saturating_add(clamp(k)),
            // RANGE with an offset is planned away; count peer groups.
            (FrameBound::Preceding(k), false) => {
                let target = (g as i64).saturating_sub(clamp(k));
                if target < 0 {
                    if is_start {
                        0
                    } else {
                        -1
                    }
                } else if is_start {
                    group_start[target as usize] as i64
                } else {
                    group_end[target as usize] as i64
                }
            }
            (FrameBound::Following(k), false) => {
                let target = g.saturating_add(clamp(k) as usize);
                if target >= groups {
                    if is_start {
                        n as i64
                    } else {
                        n as i64 - 1
                    }
                } else if is_start {
                    group_start[target] as i64
                } else {
                    group_end[target] as i64
                }
            }
        }
    };
    let start = position(f.start, true).max(0);
    let end = position(f.end, false).min(n as i64 - 1);
    (start <= end).then_some((start as usize, end as usize))
}
