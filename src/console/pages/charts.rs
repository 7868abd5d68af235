//! Charts drawn on the server as inline SVG: plain shapes with attributes, no script and
//! no inline style (the CSP allows neither).

/// Seats in use against seats bought, as a bar 120 units wide.
#[derive(Debug, Clone)]
pub struct UsageBar {
    pub width: i64,
    /// `full`, `near` or empty.
    pub class: &'static str,
    pub label: String,
}

impl UsageBar {
    pub fn new(in_use: i64, seats: i64, capacity: i64) -> Self {
        let width = if seats > 0 {
            (in_use * 120 / seats).clamp(0, 120)
        } else {
            0
        };
        let class = if in_use >= capacity {
            "full"
        } else if in_use * 10 >= seats * 9 {
            "near"
        } else {
            ""
        };
        Self {
            width,
            class,
            label: format!("{in_use} of {seats} seats in use"),
        }
    }

    /// The same bar with another label (a pool counts units, not seats).
    pub fn with_label(mut self, label: String) -> Self {
        self.label = label;
        self
    }
}

/// One bar of a chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    /// Tooltip: the bucket and its value.
    pub title: String,
}

/// A bar chart of one series.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: &'static str,
    pub caption: String,
    /// `bar` or `refused` (the fill class).
    pub class: &'static str,
    pub bars: Vec<Bar>,
    pub max: i64,
    pub first_label: String,
    pub last_label: String,
}

/// Drawing area, in SVG units.
pub const WIDTH: i64 = 360;
pub const HEIGHT: i64 = 120;
const TOP: i64 = 12;
const LEFT: i64 = 30;

impl Chart {
    /// Bars for `(label, value)` buckets, oldest first.
    pub fn new(
        id: &'static str,
        caption: String,
        class: &'static str,
        buckets: &[(String, i64)],
    ) -> Self {
        let max = buckets.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let count = i64::try_from(buckets.len()).unwrap_or(1).max(1);
        let plot_width = WIDTH - LEFT;
        let plot_height = HEIGHT - TOP - 14;
        let slot = plot_width / count;
        let bars = buckets
            .iter()
            .enumerate()
            .map(|(i, (label, value))| {
                let height = value * plot_height / max;
                Bar {
                    x: LEFT + i64::try_from(i).unwrap_or(0) * slot + 1,
                    y: TOP + plot_height - height,
                    width: (slot - 2).max(1),
                    height,
                    title: format!("{label}: {value}"),
                }
            })
            .collect();
        Self {
            id,
            caption,
            class,
            bars,
            max,
            first_label: buckets.first().map(|b| b.0.clone()).unwrap_or_default(),
            last_label: buckets.last().map(|b| b.0.clone()).unwrap_or_default(),
        }
    }

    /// Where the axis runs.
    pub fn axis_y(&self) -> i64 {
        HEIGHT - 14
    }
}
