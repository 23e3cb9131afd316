//! Length-sorted batches under a token budget: padding waste stays small, and no batch
//! holds more than `budget` tokens including padding.

/// Splits the indices of `lengths` into batches, longest first, each with
/// `max_len * rows <= budget` (a single over-long input still gets a batch of its own).
pub fn token_budget_batches(lengths: &[usize], budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_max = 0;
    for i in order {
        let max_len = current_max.max(lengths[i]).max(1);
        if !current.is_empty() && max_len * (current.len() + 1) > budget {
            batches.push(std::mem::take(&mut current));
            current_max = 0;
        }
        current_max = current_max.max(lengths[i]);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_budget_and_cover_every_input_once() {
        let lengths = [5, 100, 7, 60, 1, 1, 300, 40];
        let batches = token_budget_batches(&lengths, 128);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for batch in &batches {
            let max = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(max * batch.len() <= 128 || batch.len() == 1, "{batch:?}");
        }
        // Longest first.
        assert_eq!(batches[0], vec![6]);
    }

    #[test]
    fn no_input_no_batch() {
        assert!(token_budget_batches(&[], 10).is_empty());
    }
}
