//! "Did you mean …?" for a tag that does not exist, from the repository's tag list.

/// Up to `max` existing tags closest to `wanted`, best first.
///
/// Close means a small edit distance relative to the tag's length (typos like `lastest`),
/// where look-alike characters (`l`/`1`, `o`/`0`) cost nothing and a `v` prefix added or
/// removed costs nothing. Only the tags at the smallest distance are offered: one good
/// suggestion beats three vague ones. Equal distances prefer the higher tag, which for
/// version-like tags is usually the newer release.
pub fn nearest_tags<'a>(wanted: &str, tags: &'a [String], max: usize) -> Vec<&'a str> {
    let wanted_lower = look_alike(wanted);
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    let mut scored: Vec<(usize, &str)> = tags
        .iter()
        .filter(|t| t.as_str() != wanted && is_tag(t))
        .filter_map(|t| {
            // Tags whose lengths differ by more than the limit cannot be close: skip them before
            // paying for the distance (tag lists can be long).
            if t.len().abs_diff(wanted.len()) > limit {
                return None;
            }
            let lower = look_alike(t);
            let d = if lower == wanted_lower
                || lower.strip_prefix('v') == Some(wanted_lower.as_str())
                || wanted_lower.strip_prefix('v') == Some(lower.as_str())
            {
                0
            } else {
                edit_distance(&wanted_lower, &lower)
            };
            (d <= limit).then_some((d, t.as_str()))
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)));
    let best = scored.first().map_or(0, |s| s.0);
    scored
        .into_iter()
        .take_while(|(d, _)| *d == best)
        .take(max)
        .map(|(_, t)| t)
        .collect()
}

/// The reference grammar's tag (`[\w][\w.-]{0,127}`): anything else in a tag list is not a
/// tag a pod could name, and is not repeated to the user.
fn is_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Lowercase, with characters that look alike in a terminal folded together.
fn look_alike(tag: &str) -> String {
    tag.chars()
        .map(|c| match c.to_ascii_lowercase() {
            'l' | 'i' => '1',
            'o' => '0',
            other => other,
        })
        .collect()
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, which are the
/// commonest typing slip (`lastest` vs `latest` is one insertion, `v1.14` vs `v1.41` one swap).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(prev2[j - 2] + 1);
            }
            cur[j] = best;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn suggests_the_tags_a_person_meant() {
        let repo = tags(&[
            "v1.4.0",
            "v1.4.1",
            "v1.5.0",
            "latest",
            "1.27",
            "1.27-alpine",
        ]);
        let cases: &[(&str, &[&str])] = &[
            ("v1.4.l", &["v1.4.1"]),
            ("1.4.1", &["v1.4.1"]),
            ("v1.4.2", &["v1.4.1", "v1.4.0"]),
            ("v1.4.O", &["v1.4.0"]),
            ("lastest", &["latest"]),
            ("latests", &["latest"]),
            ("LATEST", &["latest"]),
            ("1.72", &["1.27"]),
            ("1.27-alpnie", &["1.27-alpine"]),
            ("totally-different", &[]),
            ("x", &[]),
        ];
        for (wanted, expected) in cases {
            let got = nearest_tags(wanted, &repo, 3);
            assert_eq!(&got, expected, "for {wanted}");
        }
    }

    #[test]
    fn never_suggests_what_is_not_a_tag() {
        let list = tags(&["v1.2.4\u{1b}[2J", "-v1.2.4", "v1.2.5"]);
        assert_eq!(nearest_tags("v1.2.3", &list, 3), ["v1.2.5"]);
    }

    #[test]
    fn never_suggests_the_missing_tag_itself_and_respects_max() {
        let repo = tags(&["a1", "a2", "a3", "a4"]);
        assert_eq!(nearest_tags("a1", &repo, 2), vec!["a4", "a3"]);
        assert_eq!(nearest_tags("a1", &repo, 5), vec!["a4", "a3", "a2"]);
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
