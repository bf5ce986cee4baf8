//! The pagination fields of every list answer (`count`, `total`, `limit`, `offset`, `window`, …).

use serde::{Deserialize, Serialize};

/// Where a page sits in its list. Every field is optional: older servers leave some out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageInfo {
    #[serde(default)]
    pub count: Option<u64>,
    /// Rows matching the filter in the whole store (may exceed `window`).
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub offset: Option<u64>,
    /// The deepest offset the server will serve.
    #[serde(default)]
    pub window: Option<u64>,
    #[serde(default)]
    pub sort_by: Option<String>,
    #[serde(default)]
    pub sort_order: Option<String>,
}

impl PageInfo {
    /// Whether another page follows this one, given how many items this page held.
    pub fn has_more(&self, items_on_page: usize) -> bool {
        let (Some(offset), Some(total)) = (self.offset, self.total) else {
            return false;
        };
        if items_on_page == 0 {
            return false;
        }
        let reachable = match self.window {
            Some(window) => total.min(window),
            None => total,
        };
        offset + (items_on_page as u64) < reachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_pages_follow_until_total_or_window() {
        let page = PageInfo {
            offset: Some(0),
            total: Some(250),
            window: Some(10_000),
            ..PageInfo::default()
        };
        assert!(page.has_more(100));
        let last = PageInfo {
            offset: Some(200),
            ..page.clone()
        };
        assert!(!last.has_more(50));
        let windowed = PageInfo {
            offset: Some(0),
            total: Some(500),
            window: Some(100),
            ..PageInfo::default()
        };
        assert!(
            !windowed.has_more(100),
            "the window caps how deep a client may page"
        );
        assert!(
            !PageInfo::default().has_more(10),
            "without totals there is nothing to page on"
        );
        assert!(!page.has_more(0), "an empty page ends the walk");
    }
}
