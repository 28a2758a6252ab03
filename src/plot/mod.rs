//! Pictures of a run, drawn from its files alone (metrics.csv, latents.npy,
//! labels.npy, plots/inputs.npy, the weights), as PNG and SVG. The font is
//! embedded, so text renders on a machine with no system fonts.
//!
//!   loss             train/validation loss per epoch (+ VAE terms), lr panel when it changes
//!   latent           validation codes: 2-d as they are, wider ones by PCA or t-SNE
//!   reconstructions  originals above reconstructions (noisy / output / clean for denoising);
//!                    per-feature error bars for tabular data
//!   samples, interpolation, manifold   VAE: prior draws, a path between two codes, the 2-d grid
//!   compare          validation curves of several runs
use crate::config::Projection;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

const FONT: &str = "sans-serif";

fn init_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("DejaVuSans.ttf"),
        );
    });
}

/// Tableau's ten colours: distinct, colour-blind friendlier than a rainbow.
pub const PALETTE: [RGBColor; 10] = [
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

pub fn color(i: usize) -> RGBColor {
    if i < PALETTE.len() {
        PALETTE[i]
    } else {
        let c = PALETTE[i % PALETTE.len()];
        RGBColor(c.0 / 2 + 64, c.1 / 2 + 64, c.2 / 2 + 64)
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// Draw one picture twice: `stem.png` and `stem.svg`, each written atomically.
macro_rules! both {
    ($dir:expr, $stem:expr, $size:expr, $f:ident, $($arg:expr),*) => {{
        init_font();
        let png = $dir.join(format!("{}.png", $stem));
        crate::util::write_atomic_with(&png, |tmp| {
            let root = BitMapBackend::new(tmp, $size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            $f(&root, $($arg),*)?;
            root.present().map_err(err)?;
            Ok(())
        })?;
        let svg = $dir.join(format!("{}.svg", $stem));
        crate::util::write_atomic_with(&svg, |tmp| {
            let root = SVGBackend::new(tmp, $size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            $f(&root, $($arg),*)?;
            root.present().map_err(err)?;
            Ok(())
        })?;
        Ok::<std::path::PathBuf, anyhow::Error>(png)
    }};
}

mod grid;
mod tsne;

/// Redraw every picture of a run; each failure is returned as a warning naming
/// the picture, never as an error.
pub fn draw_all(dir: &Path) -> Vec<String> {
    let out = dir.join("plots");
    let mut warnings = vec![];
    if let Err(e) = std::fs::create_dir_all(&out) {
        return vec![format!("cannot create {}: {e}", out.display())];
    }
    let name = std::fs::read_to_string(dir.join("config.yaml"))
        .ok()
        .and_then(|t| crate::config::parse(&t, &[]).ok());
    let title = name
        .as_ref()
        .map(|e| e.name.clone())
        .unwrap_or_else(|| "run".into());
    let mut attempt = |what: &str, r: Result<()>| {
        if let Err(e) = r {
            warnings.push(format!("plot `{what}` was not drawn: {e:#}"));
        }
    };
    attempt("loss", loss(dir, &out, &title));
    let (method, points) = name
        .as_ref()
        .map(|e| (e.plots.latent.method, e.plots.latent.points))
        .unwrap_or((Projection::Pca, 3000));
    attempt("latent", latent(dir, &out, &title, method, points));
    match crate::run::load_run(dir) {
        Ok((exp, model)) => {
            let n = exp.plots.reconstructions;
            attempt(
                "reconstructions",
                grid::reconstructions(dir, &out, &title, &model, n),
            );
            if model.variational && model.sample_shape.len() == 3 {
                attempt("samples", grid::samples(&out, &title, &model, exp.seed));
                attempt(
                    "interpolation",
                    grid::interpolation(dir, &out, &title, &model),
                );
                if model.latent == 2 {
                    attempt("manifold", grid::manifold(&out, &title, &model));
                }
            }
        }
        Err(e) => attempt("reconstructions", Err(e)),
    }
    warnings
}

// ---------------------------------------------------------------- loss

struct Curve {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Values to plot, and whether the axis is log10 (values spanning decades).
fn log_axis(curves: &[Curve]) -> bool {
    let vals: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .collect();
    let lo = vals.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    lo > 0.0 && hi / lo > 20.0
}

/// A tick label with as many decimals as the axis span needs, and no more.
fn tick(v: f64, span: f64) -> String {
    let decimals = if span <= 0.0 {
        3
    } else {
        (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    };
    format!("{v:.decimals$}")
}

fn curve_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    curves: &[Curve],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let log = log_axis(curves);
    let tf = |v: f64| if log { v.log10() } else { v };
    let pts: Vec<(f64, f64)> = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|&(x, y)| (x, tf(y))))
        .filter(|p| p.1.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(anyhow!("no finite values to draw"));
    }
    let (x0, x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.0), a.1.max(p.0))
    });
    let (y0, y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.1), a.1.max(p.1))
    });
    let pad = ((y1 - y0) * 0.08).max(1e-9);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(err)?;
    let ylab = if log {
        format!("{ylabel} (log scale)")
    } else {
        ylabel.to_string()
    };
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylab)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .y_label_formatter(&|v| {
            if log {
                format!("{:.2e}", 10f64.powf(*v))
            } else {
                tick(*v, y1 - y0)
            }
        })
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    for (i, c) in curves.iter().enumerate() {
        let col = color(i);
        let data: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|&(x, y)| (x, tf(y)))
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), col.stroke_width(2)))
            .map_err(err)?
            .label(c.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3)));
        if data.len() <= 60 {
            chart
                .draw_series(data.iter().map(|&p| Circle::new(p, 3, col.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn loss_picture<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[crate::metrics::Row],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let series = |k: &str| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((r.get("epoch")?, r.get(k)?)))
            .collect()
    };
    let mut curves = vec![
        Curve {
            name: "train loss".into(),
            points: series("train_loss"),
        },
        Curve {
            name: "validation loss".into(),
            points: series("val_loss"),
        },
    ];
    for k in ["val_recon", "val_kl"] {
        let s = series(k);
        if !s.is_empty() {
            curves.push(Curve {
                name: format!("validation {}", &k[4..]),
                points: s,
            });
        }
    }
    let lrs = series("lr");
    let lr_changes = lrs.windows(2).any(|w| (w[0].1 - w[1].1).abs() > 1e-15);
    let (top, bottom) = if lr_changes {
        let h = root.dim_in_pixel().1;
        let (a, b) = root.split_vertically((h as f64 * 0.72) as u32);
        (a, Some(b))
    } else {
        (root.clone(), None)
    };
    curve_chart(
        &top,
        &format!("{title}: loss per epoch"),
        "epoch",
        "loss",
        &curves,
    )?;
    if let Some(b) = bottom {
        curve_chart(
            &b,
            "learning rate",
            "epoch",
            "lr",
            &[Curve {
                name: "learning rate".into(),
                points: lrs,
            }],
        )?;
    }
    Ok(())
}

fn loss(dir: &Path, out: &Path, title: &str) -> Result<()> {
    let rows = crate::metrics::read_csv(&dir.join("metrics.csv"))?;
    if rows.is_empty() {
        return Err(anyhow!("metrics.csv has no epochs"));
    }
    both!(out, "loss", (900, 600), loss_picture, title, &rows)?;
    Ok(())
}

// ---------------------------------------------------------------- latent

struct Scatter {
    xs: Vec<(f64, f64)>,
    labels: Option<Vec<i64>>,
    names: Vec<String>,
    xlabel: String,
    ylabel: String,
}

fn scatter_picture<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    s: &Scatter,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) =
        s.xs.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
                (a.0.min(p.0), a.1.max(p.0))
            });
    let (y0, y1) =
        s.xs.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
                (a.0.min(p.1), a.1.max(p.1))
            });
    let px = ((x1 - x0) * 0.05).max(1e-6);
    let py = ((y1 - y0) * 0.05).max(1e-6);
    let (plot, legend) = root.split_horizontally(root.dim_in_pixel().0 - 170);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(s.xlabel.as_str())
        .y_desc(s.ylabel.as_str())
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(err)?;
    match &s.labels {
        Some(l) => {
            chart
                .draw_series(
                    s.xs.iter().zip(l).map(|(&p, &c)| {
                        Circle::new(p, 2, color(c.max(0) as usize).mix(0.6).filled())
                    }),
                )
                .map_err(err)?;
            let classes: std::collections::BTreeSet<i64> = l.iter().copied().collect();
            for (row, c) in classes.iter().enumerate().take(30) {
                let y = 60 + 24 * row as i32;
                let name = s
                    .names
                    .get(*c as usize)
                    .cloned()
                    .unwrap_or_else(|| c.to_string());
                legend
                    .draw(&Circle::new((14, y), 6, color(*c as usize).filled()))
                    .map_err(err)?;
                legend
                    .draw(&Text::new(name, (26, y - 8), (FONT, 15).into_font()))
                    .map_err(err)?;
            }
        }
        None => {
            chart
                .draw_series(
                    s.xs.iter()
                        .map(|&p| Circle::new(p, 2, PALETTE[0].mix(0.5).filled())),
                )
                .map_err(err)?;
        }
    }
    Ok(())
}

fn latent(dir: &Path, out: &Path, title: &str, method: Projection, points: i64) -> Result<()> {
    let z = crate::data::read_array(&dir.join("latents.npy"))?.to_kind(Kind::Double);
    // exact t-SNE is O(N²): it is drawn on at most 2000 codes
    let cap = if method == Projection::Tsne {
        points.min(2000)
    } else {
        points
    };
    let n = z.size()[0].min(cap);
    let z = z.narrow(0, 0, n).flatten(1, -1);
    let labels_path = dir.join("labels.npy");
    let labels = if labels_path.exists() {
        let y = crate::data::read_array(&labels_path)?.to_kind(Kind::Int64);
        Some(Vec::<i64>::try_from(&y.narrow(0, 0, n))?)
    } else {
        None
    };
    let d = z.size()[1];
    let (xy, xlabel, ylabel, what) = if d == 1 {
        let zeros = z.zeros_like();
        (
            Tensor::cat(&[&z, &zeros], 1),
            "code".to_string(),
            "".to_string(),
            "1-d code",
        )
    } else if d == 2 {
        (z, "code 1".to_string(), "code 2".to_string(), "2-d code")
    } else if method == Projection::Tsne {
        (
            tsne::tsne(&z, 30.0, 500, 0),
            "t-SNE 1".to_string(),
            "t-SNE 2".to_string(),
            "t-SNE of the code",
        )
    } else {
        let p = crate::pca::Pca::fit(&z, 2);
        let ev = p.explained.clone();
        (
            p.project(&z),
            format!(
                "PC 1 ({:.1}% of variance)",
                100.0 * ev.first().copied().unwrap_or(0.0)
            ),
            format!(
                "PC 2 ({:.1}% of variance)",
                100.0 * ev.get(1).copied().unwrap_or(0.0)
            ),
            "PCA of the code",
        )
    };
    let flat = Vec::<f64>::try_from(&xy.to_kind(Kind::Double).contiguous().view([-1]))?;
    let xs: Vec<(f64, f64)> = flat.chunks(2).map(|c| (c[0], c[1])).collect();
    let names = std::fs::read_to_string(dir.join("config.yaml"))
        .ok()
        .and_then(|t| crate::config::parse(&t, &[]).ok())
        .and_then(|e| {
            e.class_names().ok().flatten().or_else(|| {
                let p = e.data.path.unwrap_or_default().to_lowercase();
                (e.data.source == crate::config::Source::Idx).then(|| {
                    if p.contains("fashion") {
                        crate::config::fashion_names()
                    } else {
                        (0..10).map(|i| i.to_string()).collect()
                    }
                })
            })
        })
        .unwrap_or_default();
    let s = Scatter {
        xs,
        labels,
        names,
        xlabel,
        ylabel,
    };
    let t = format!("{title}: {what}, {n} validation samples");
    both!(out, "latent", (1000, 760), scatter_picture, &t, &s)?;
    Ok(())
}

// ---------------------------------------------------------------- compare

/// `aelab plot --compare`: validation loss of several runs on one chart.
pub fn compare(runs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    let mut curves = vec![];
    for r in runs {
        let rows = crate::metrics::read_csv(&r.join("metrics.csv"))?;
        let name = r
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        curves.push(Curve {
            name,
            points: rows
                .iter()
                .filter_map(|row| Some((row.get("epoch")?, row.get("val_loss")?)))
                .collect(),
        });
    }
    std::fs::create_dir_all(out)?;
    let png = both!(out, "compare", (900, 600), compare_picture, &curves)?;
    Ok(png)
}

fn compare_picture<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[Curve],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    curve_chart(
        root,
        "validation loss per epoch",
        "epoch",
        "validation loss",
        curves,
    )
}
