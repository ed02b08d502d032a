//! SVG charts of a run (plotters, SVG backend only): latency percentiles
//! against offered load, and deliveries per second and CPU per delivery
//! against room size.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::deploy::Mode;
use crate::report::Row;

/// One line of a chart.
struct Series {
    label: String,
    color: RGBColor,
    thick: bool,
    points: Vec<(f64, f64)>,
}

fn color(mode: Mode) -> RGBColor {
    match mode {
        Mode::Baseline => RGBColor(90, 90, 90),
        Mode::DurableBaseline => RGBColor(160, 160, 160),
        Mode::Embedded => RGBColor(31, 119, 180),
        Mode::Redis => RGBColor(214, 39, 40),
        Mode::TwoNode => RGBColor(44, 160, 44),
    }
}

fn servers(rows: &[&Row]) -> Vec<Mode> {
    let mut modes: Vec<Mode> = rows.iter().map(|r| r.mode).collect();
    modes.sort();
    modes.dedup();
    modes
}

/// Writes every chart the rows allow into `out`; returns the files written.
///
/// # Errors
/// When a file cannot be written.
pub fn write_all(rows: &[Row], out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let fanout: Vec<&Row> = rows.iter().filter(|r| r.scenario == "fanout").collect();

    // Latency against load: the room size with the most steps (the sweep).
    let mut sizes: Vec<usize> = fanout.iter().filter_map(|r| r.room_size).collect();
    sizes.sort_unstable();
    let sweep_size = sizes
        .iter()
        .copied()
        .max_by_key(|s| (sizes.iter().filter(|x| *x == s).count(), *s));
    if let Some(size) = sweep_size {
        let mut series = Vec::new();
        let sweep: Vec<&Row> = fanout
            .iter()
            .copied()
            .filter(|r| r.room_size == Some(size))
            .collect();
        for mode in servers(&sweep) {
            let mut points: Vec<(f64, u64, u64)> = sweep
                .iter()
                .filter(|r| r.mode == mode)
                .filter_map(|r| Some((r.offered_per_s?, r.latency?.p50_us, r.latency?.p99_us)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series {
                label: format!("{} p99", mode.label()),
                color: color(mode),
                thick: true,
                points: points.iter().map(|p| (p.0, p.2 as f64 / 1000.0)).collect(),
            });
            series.push(Series {
                label: format!("{} p50", mode.label()),
                color: color(mode),
                thick: false,
                points: points.iter().map(|p| (p.0, p.1 as f64 / 1000.0)).collect(),
            });
        }
        let path = out.join("latency-vs-load.svg");
        chart(
            &path,
            &format!("fanout, rooms of {size}: latency against offered load"),
            "offered deliveries per second",
            "latency, ms (log)",
            &series,
            false,
            true,
        )?;
        written.push(path);
    }

    // Per room size: the first step of each size (the size series).
    let mut by_size: Vec<&Row> = Vec::new();
    for r in &fanout {
        if !by_size
            .iter()
            .any(|b| b.mode == r.mode && b.room_size == r.room_size)
        {
            by_size.push(r);
        }
    }
    if !by_size.is_empty() {
        let pick = |f: fn(&Row) -> Option<f64>| -> Vec<Series> {
            servers(&by_size)
                .into_iter()
                .map(|mode| {
                    let mut points: Vec<(f64, f64)> = by_size
                        .iter()
                        .filter(|r| r.mode == mode)
                        .filter_map(|r| Some((r.room_size? as f64, f(r)?)))
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series {
                        label: mode.label().to_owned(),
                        color: color(mode),
                        thick: true,
                        points,
                    }
                })
                .collect()
        };
        let path = out.join("deliveries-vs-room-size.svg");
        chart(
            &path,
            "fanout: deliveries per second against room size",
            "members per room (log)",
            "deliveries per second (log)",
            &pick(|r| r.deliveries_per_s),
            true,
            true,
        )?;
        written.push(path);
        let path = out.join("cpu-per-delivery-vs-room-size.svg");
        chart(
            &path,
            "fanout: server CPU per delivery against room size",
            "members per room (log)",
            "server CPU µs per delivery (log)",
            &pick(|r| r.cpu_us_per_delivery),
            true,
            true,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Draws `series` as lines with points. Log axes are drawn by plotting
/// log10 of the values on a linear axis and labelling with the powers, which
/// keeps one chart type for every combination.
fn chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> anyhow::Result<()> {
    let tx = |v: f64| if log_x { v.max(1e-9).log10() } else { v };
    let ty = |v: f64| if log_y { v.max(1e-9).log10() } else { v };
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(x, y)| (tx(*x), ty(*y))))
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = all.iter().fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), (x, y)| (a.min(*x), b.max(*x), c.min(*y), d.max(*y)),
    );
    if all.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    // Log axes span whole powers of ten (so the labels are 1, 10, 100…);
    // linear ones start at zero.
    let pad = |lo: f64, hi: f64, log: bool| {
        if log {
            let (lo, hi) = (lo.floor(), hi.ceil());
            if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
        } else {
            let span = (hi - lo.min(0.0)).max(1e-9);
            (lo.min(0.0), hi + span * 0.1)
        }
    };
    let (x0, x1) = pad(x0, x1, log_x);
    let (y0, y1) = pad(y0, y1, log_y);
    let labels = |lo: f64, hi: f64, log: bool| {
        if log { (hi - lo) as usize + 1 } else { 10 }
    };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let fmt = |log: bool| {
            move |v: &f64| {
                let v = if log { 10f64.powf(*v) } else { *v };
                if v == 0.0 || v >= 100.0 || (v >= 1.0 && (v - v.round()).abs() < 1e-6) {
                    format!("{v:.0}")
                } else if v >= 1.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                }
            }
        };
        let fx = fmt(log_x);
        let fy = fmt(log_y);
        chart
            .configure_mesh()
            .x_labels(labels(x0, x1, log_x))
            .y_labels(labels(y0, y1, log_y))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .draw()?;
        for s in series {
            let style = ShapeStyle::from(&s.color).stroke_width(if s.thick { 3 } else { 1 });
            let points: Vec<(f64, f64)> = s.points.iter().map(|(x, y)| (tx(*x), ty(*y))).collect();
            let color = s.color;
            let thick = s.thick;
            chart
                .draw_series(LineSeries::new(points.clone(), style))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 24, y)],
                        ShapeStyle::from(&color).stroke_width(if thick { 3 } else { 1 }),
                    )
                });
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, if s.thick { 4 } else { 3 }, style.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::stats::LatencySummary;

    fn row(mode: Mode, size: usize, offered: f64, p99: u64) -> Row {
        let mut r = Row::new(
            "fanout",
            format!("{size} @ {offered}"),
            mode,
            serde_json::json!({}),
        );
        r.room_size = Some(size);
        r.offered_per_s = Some(offered);
        r.deliveries_per_s = Some(offered * 0.99);
        r.cpu_us_per_delivery = Some(8.0);
        r.latency = Some(LatencySummary {
            count: 10,
            p50_us: p99 / 3,
            p90_us: p99 / 2,
            p99_us: p99,
            p999_us: p99,
            max_us: p99,
            mean_us: 1.0,
        });
        r
    }

    #[test]
    fn charts_are_svg_files_naming_every_server() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            row(Mode::Baseline, 1, 2000.0, 900),
            row(Mode::Baseline, 100, 10_000.0, 1500),
            row(Mode::Baseline, 100, 50_000.0, 3000),
            row(Mode::Embedded, 1, 2000.0, 800),
            row(Mode::Embedded, 100, 10_000.0, 1400),
            row(Mode::Embedded, 100, 50_000.0, 2500),
        ];
        let files = write_all(&rows, dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        for f in files {
            let svg = std::fs::read_to_string(&f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", f.display());
            assert!(svg.contains("baseline"));
            assert!(svg.contains("hihichat"));
        }
    }
}
