//! Image grids (reconstructions, VAE samples, interpolation, manifold) and the
//! per-feature error chart for tabular data.
use super::{color, err, init_font, FONT};
use crate::model::Model;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Rows of images, each row with a label; images are [C, H, W] in [0, 1].
struct Grid {
    title: String,
    rows: Vec<(String, Vec<Vec<f32>>)>,
    shape: (usize, usize, usize),
    scale: i32,
}

impl Grid {
    fn new(title: String, rows: Vec<(String, &Tensor)>) -> Result<Grid> {
        let first = rows.first().ok_or_else(|| anyhow!("nothing to draw"))?.1;
        let s = first.size();
        let shape = (s[1] as usize, s[2] as usize, s[3] as usize);
        let per = shape.0 * shape.1 * shape.2;
        let mut out = vec![];
        for (name, t) in rows {
            let v = Vec::<f32>::try_from(
                &t.to_kind(Kind::Float)
                    .clamp(0.0, 1.0)
                    .contiguous()
                    .view([-1]),
            )?;
            out.push((name, v.chunks(per).map(|c| c.to_vec()).collect()));
        }
        let scale = (96 / shape.1.max(1) as i32).clamp(1, 6);
        Ok(Grid {
            title,
            rows: out,
            shape,
            scale,
        })
    }

    fn label_w(&self) -> i32 {
        if self.rows.iter().all(|r| r.0.is_empty()) {
            10
        } else {
            130
        }
    }

    fn size(&self) -> (u32, u32) {
        let (_, h, w) = self.shape;
        let cols = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(1) as i32;
        let cw = w as i32 * self.scale + 6;
        let ch = h as i32 * self.scale + 6;
        (
            (self.label_w() + cols * cw + 10).max(360) as u32,
            (50 + self.rows.len() as i32 * ch + 10) as u32,
        )
    }
}

fn grid_picture<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, g: &Grid) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (c, h, w) = g.shape;
    let s = g.scale;
    root.draw(&Text::new(
        g.title.clone(),
        (10, 12),
        (FONT, 20).into_font(),
    ))
    .map_err(err)?;
    for (r, (name, images)) in g.rows.iter().enumerate() {
        let top = 50 + r as i32 * (h as i32 * s + 6);
        if !name.is_empty() {
            root.draw(&Text::new(
                name.clone(),
                (10, top + h as i32 * s / 2 - 8),
                (FONT, 16).into_font(),
            ))
            .map_err(err)?;
        }
        for (i, img) in images.iter().enumerate() {
            let left = g.label_w() + i as i32 * (w as i32 * s + 6);
            for y in 0..h {
                for x in 0..w {
                    let px = |ch: usize| (img[ch * h * w + y * w + x] * 255.0).round() as u8;
                    let col = if c >= 3 {
                        RGBColor(px(0), px(1), px(2))
                    } else {
                        RGBColor(px(0), px(0), px(0))
                    };
                    let x0 = left + x as i32 * s;
                    let y0 = top + y as i32 * s;
                    root.draw(&Rectangle::new([(x0, y0), (x0 + s, y0 + s)], col.filled()))
                        .map_err(err)?;
                }
            }
        }
    }
    Ok(())
}

fn save_grid(out: &Path, stem: &str, g: &Grid) -> Result<()> {
    let size = g.size();
    both!(out, stem, size, grid_picture, g)?;
    Ok(())
}

fn read_inputs(dir: &Path, name: &str) -> Result<Tensor> {
    Ok(crate::data::read_array(&dir.join("plots").join(name))?.to_kind(Kind::Float))
}

pub fn reconstructions(dir: &Path, out: &Path, title: &str, model: &Model, n: i64) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let x = read_inputs(dir, "inputs.npy")?;
    // images: a grid of n; tabular data: the error chart over every kept row
    let n = if model.sample_shape.len() == 3 {
        n.min(x.size()[0])
    } else {
        x.size()[0]
    };
    let x = x.narrow(0, 0, n);
    let noisy = dir.join("plots").join("inputs_noisy.npy");
    let noisy = if noisy.exists() {
        Some(read_inputs(dir, "inputs_noisy.npy")?.narrow(0, 0, n))
    } else {
        None
    };
    let input = noisy.as_ref().unwrap_or(&x);
    let y = tch::no_grad(|| model.reconstruct(input));
    if model.sample_shape.len() != 3 {
        return feature_errors(out, title, &x, &y);
    }
    let rows = match &noisy {
        Some(nz) => vec![
            ("noisy input".to_string(), nz),
            ("output".to_string(), &y),
            ("clean target".to_string(), &x),
        ],
        None => vec![
            ("original".to_string(), &x),
            ("reconstruction".to_string(), &y),
        ],
    };
    let g = Grid::new(
        format!("{title}: reconstructions of validation samples"),
        rows,
    )?;
    save_grid(out, "reconstructions", &g)
}

pub fn samples(out: &Path, title: &str, model: &Model, seed: u64) -> Result<()> {
    tch::manual_seed(seed as i64);
    let z = Tensor::randn([64, model.latent], (Kind::Float, Device::Cpu));
    let x = tch::no_grad(|| model.decode(&z));
    let rows: Vec<(String, Tensor)> = (0..8)
        .map(|r| (String::new(), x.narrow(0, r * 8, 8)))
        .collect();
    let g = Grid::new(
        format!("{title}: decoded draws from the prior N(0, I)"),
        rows.iter().map(|(n, t)| (n.clone(), t)).collect(),
    )?;
    save_grid(out, "samples", &g)
}

pub fn interpolation(dir: &Path, out: &Path, title: &str, model: &Model) -> Result<()> {
    let x = read_inputs(dir, "inputs.npy")?;
    if x.size()[0] < 2 {
        return Err(anyhow!("needs two validation samples"));
    }
    let z = tch::no_grad(|| model.encode(&x.narrow(0, 0, 2)));
    let (a, b) = (z.get(0), z.get(1));
    let steps = 10;
    let path: Vec<Tensor> = (0..steps)
        .map(|i| {
            let t = i as f64 / (steps - 1) as f64;
            (&a * (1.0 - t) + &b * t).unsqueeze(0)
        })
        .collect();
    let imgs = tch::no_grad(|| model.decode(&Tensor::cat(&path, 0)));
    let ends = Tensor::cat(&[x.narrow(0, 0, 1), x.narrow(0, 1, 1)], 0);
    let g = Grid::new(
        format!("{title}: decoded path between two validation codes"),
        vec![
            ("path".to_string(), &imgs),
            ("endpoints".to_string(), &ends),
        ],
    )?;
    save_grid(out, "interpolation", &g)
}

pub fn manifold(out: &Path, title: &str, model: &Model) -> Result<()> {
    let k = 15;
    let mut rows = vec![];
    for r in 0..k {
        let y = 2.5 - 5.0 * r as f64 / (k - 1) as f64;
        let zs: Vec<f32> = (0..k)
            .flat_map(|c| [(-2.5 + 5.0 * c as f64 / (k - 1) as f64) as f32, y as f32])
            .collect();
        let z = Tensor::from_slice(&zs).view([k, 2]);
        rows.push((String::new(), tch::no_grad(|| model.decode(&z))));
    }
    let g = Grid::new(
        format!("{title}: decoded 2-d code grid, [-2.5, 2.5]²"),
        rows.iter().map(|(n, t)| (n.clone(), t)).collect(),
    )?;
    save_grid(out, "manifold", &g)
}

/// Tabular data: mean squared error of each feature over the kept samples.
fn feature_errors(out: &Path, title: &str, x: &Tensor, y: &Tensor) -> Result<()> {
    let e = (y - x)
        .square()
        .flatten(1, -1)
        .mean_dim(0, false, Kind::Double);
    let v = Vec::<f64>::try_from(&e)?;
    init_font();
    let t = format!(
        "{title}: reconstruction error per feature ({} validation samples)",
        x.size()[0]
    );
    both!(out, "reconstructions", (900, 520), bars, &t, &v)?;
    Ok(())
}

fn bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, v: &[f64]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let top = v.iter().cloned().fold(0.0, f64::max);
    let hi = if top > 0.0 { top * 1.12 } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..(v.len() as f64 - 0.5), 0.0..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("feature")
        .y_desc("mean squared error")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1e}"))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(v.iter().enumerate().map(|(i, &e)| {
            Rectangle::new(
                [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, e)],
                color(0).filled(),
            )
        }))
        .map_err(err)?;
    Ok(())
}
