//! Recall–QPS plots, ann-benchmarks style: per algorithm, the Pareto frontier of its points
//! (recall@k on x, QPS on a log scale on y), as SVG and PNG, from any number of records — vq's
//! and the peers' in one picture.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use crate::error::{Error, Result};
use crate::record::Record;

/// DejaVu Sans (its licence is in `assets/DejaVuSans-LICENSE`): drawing text needs a
/// registered font, and vq-bench loads no system fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would only lose the labels.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One curve: its label and its Pareto-optimal `(recall, qps)` points by increasing recall.
pub type Curve = (String, Vec<(f64, f64)>);

/// Groups records by build (`library factory`, and the thread count when several appear) and
/// keeps each group's Pareto frontier: the points no other point of the group beats in both
/// recall and QPS. Records without recall are left out.
pub fn frontiers(records: &[Record]) -> Vec<Curve> {
    let many_threads = records.iter().any(|r| r.threads != records[0].threads);
    let mut groups: Vec<Curve> = Vec::new();
    for r in records {
        let Some(recall) = r.recall else { continue };
        // One curve per build: the factory string when the record has one (vq, Faiss), else
        // the algo name plus `M` (hnswlib builds M=16 and M=32 under one algo name).
        let name = match (r.build_params.get("factory").and_then(|f| f.as_str()), r.build_params.get("M")) {
            (Some(f), _) => f.to_string(),
            (None, Some(m)) => format!("{} M={m}", r.algo),
            (None, None) => r.algo.clone(),
        };
        let label = if many_threads {
            format!("{} {name} ({}t)", r.library, r.threads)
        } else {
            format!("{} {name}", r.library)
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, pts)) => pts.push((recall, r.qps)),
            None => groups.push((label, vec![(recall, r.qps)])),
        }
    }
    for (_, pts) in &mut groups {
        // Highest recall first (ties: fastest first); keep a point only if it is faster than
        // every point of higher recall.
        pts.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
        let mut best_qps = f64::NEG_INFINITY;
        pts.retain(|&(_, qps)| {
            let keep = qps > best_qps;
            best_qps = best_qps.max(qps);
            keep
        });
        pts.reverse();
    }
    groups
}

/// Draws the frontiers of `records` into `<stem>.svg` and `<stem>.png`; returns both paths.
pub fn write_plots(records: &[Record], stem: &Path, title: &str) -> Result<(PathBuf, PathBuf)> {
    register_fonts();
    let curves = frontiers(records);
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: Box<dyn std::error::Error>| Error::Plot { path: path.clone(), what: e.to_string() }
    };
    draw(SVGBackend::new(&svg, (960, 640)).into_drawing_area(), &curves, title).map_err(err(&svg))?;
    draw(BitMapBackend::new(&png, (960, 640)).into_drawing_area(), &curves, title).map_err(err(&png))?;
    Ok((svg, png))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    curves: &[Curve],
    title: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let min_recall = all.iter().map(|p| p.0).fold(1.0f64, f64::min);
    // At least the recall range 0.9..1 is shown, so a lone exact point does not fill the plot.
    let x0 = (min_recall - 0.02).clamp(0.0, 0.9);
    let (qmin, qmax) = all.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (y0, y1) = if all.is_empty() { (1.0, 10.0) } else { (qmin / 1.5, qmax * 1.5) };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..1.0f64, (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("recall@k")
        .y_desc("queries per second (log)")
        .y_labels(12)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (label, pts)) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        // Few points (exact searches, short sweeps): print their QPS beside them, since a log
        // axis spanning less than a decade carries few labels.
        if all.len() <= 12 {
            chart.draw_series(pts.iter().map(|&(x, y)| {
                let style = ("sans-serif", 13).into_font().color(&color).pos(Pos::new(HPos::Right, VPos::Center));
                Text::new(format!("{y:.0} QPS  "), (x, y), style)
            }))?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
