use super::{aligned_blocks, block_present, group_range, push, Node};

/// Values whose sums depend on the order of the additions.
fn leaf(g: usize) -> Vec<f32> {
    (0..5).map(|i| ((g * 7 + i * 13) % 17) as f32 * 1e-3 + [1e7, -1e7, 0.3, 3e-8][(g + i) % 4]).collect()
}

/// The tree over `groups` leaves, added by ranks owning `split` (consecutive ranges of groups):
/// each rank adds its own part, then the blocks are added in order, as `DataParallel` does.
fn tree(groups: usize, split: &[usize], empty: &[usize]) -> Vec<f32> {
    let mut blocks = Vec::new();
    for pair in split.windows(2) {
        let mut stack = Vec::new();
        for g in pair[0]..pair[1] {
            let values = (!empty.contains(&g)).then(|| leaf(g));
            push(&mut stack, &mut Vec::new(), Node { level: 0, index: g, values });
        }
        let expected: Vec<(u32, usize)> = aligned_blocks(pair[0]..pair[1]).collect();
        let got: Vec<(u32, usize)> = stack.iter().map(|n| (n.level, n.index)).collect();
        assert_eq!(got, expected, "the nodes a rank ends with are its aligned blocks");
        blocks.extend(stack);
    }
    let mut stack = Vec::new();
    for node in blocks {
        push(&mut stack, &mut Vec::new(), node);
    }
    assert_eq!(stack.len(), 1);
    assert_eq!((stack[0].level, stack[0].index), (groups.trailing_zeros(), 0));
    stack.pop().and_then(|n| n.values).expect("a root")
}

#[test]
fn the_tree_gives_the_same_bits_for_every_split_of_the_groups() {
    let alone = tree(16, &[0, 16], &[]);
    // The same leaves added left to right give other bits: the test can tell orders apart.
    let sequential = (0..16).map(leaf).reduce(|a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect()).unwrap();
    assert_ne!(alone, sequential);
    for split in [&[0, 8, 16][..], &[0, 4, 8, 12, 16], &[0, 5, 10, 16], &[0, 1, 2, 3, 16], &[0, 6, 11, 16]] {
        assert_eq!(tree(16, split, &[]), alone, "split {split:?}");
    }
    let with_gaps = tree(16, &[0, 16], &[3, 9, 10]);
    assert_eq!(tree(16, &[0, 3, 7, 16], &[3, 9, 10]), with_gaps);
    assert_eq!(tree(16, &[0, 4, 8, 12, 16], &[3, 9, 10]), with_gaps);
}

#[test]
fn aligned_blocks_cover_a_range_with_the_largest_blocks() {
    assert_eq!(aligned_blocks(0..16).collect::<Vec<_>>(), [(4, 0)]);
    assert_eq!(aligned_blocks(6..11).collect::<Vec<_>>(), [(1, 3), (1, 4), (0, 10)]);
    assert_eq!(aligned_blocks(5..6).collect::<Vec<_>>(), [(0, 5)]);
    assert_eq!(aligned_blocks(3..3).count(), 0);
    for start in 0..16 {
        for end in start..=16 {
            let mut at = start;
            for (level, index) in aligned_blocks(start..end) {
                assert_eq!(index << level, at);
                at += 1 << level;
            }
            assert_eq!(at, end);
        }
    }
}

#[test]
fn groups_split_a_batch_evenly_and_in_order() {
    for n in [0, 1, 3, 15, 16, 17, 64, 100] {
        let mut at = 0;
        for g in 0..8 {
            let r = group_range(n, 8, g);
            assert_eq!(r.start, at);
            assert!(r.len() == n / 8 || r.len() == n / 8 + 1, "n {n} group {g}: {r:?}");
            at = r.end;
            assert_eq!(block_present(n, 8, 0, g), !r.is_empty());
        }
        assert_eq!(at, n);
        assert_eq!(group_range(n, 8, 8), n..n);
        assert_eq!(block_present(n, 8, 3, 0), n > 0);
    }
    // Three samples in eight groups: groups 2, 5 and 7 hold one each.
    let held: Vec<usize> = (0..8).filter(|&g| !group_range(3, 8, g).is_empty()).collect();
    assert_eq!(held, [2, 5, 7]);
    assert!(!block_present(3, 8, 1, 0) && block_present(3, 8, 1, 1) && block_present(3, 8, 2, 1));
}
