//! The report's figures, drawn with plotters: each figure is drawn once per format through
//! [`Figure::draw`], generic over plotters' drawing backend, and saved as SVG (vector, text as
//! text) and PNG (text rendered with the embedded DejaVu Sans, so no system font is needed).

use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// The font every figure's text is set in, embedded (Latin-1 subset; `font/LICENSE`).
const FONT: &[u8] = include_bytes!("font/DejaVuSans-subset.ttf");
/// The family name figures ask plotters for.
const FAMILY: &str = "sans-serif";
/// Pixel size of a figure's PNG (and of its SVG's view box).
pub const FIGURE_SIZE: (u32, u32) = (960, 600);
/// Pixel size of a stage's training curves (three panels side by side).
pub const CURVES_SIZE: (u32, u32) = (1500, 450);
const CAPTION_PX: u32 = 22;
const LABEL_PX: u32 = 15;
/// Series colours, in order (colour-blind safe: Okabe and Ito's palette).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// The colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// plotters' errors carry their backend's error type; ours are text.
pub fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

/// plotters keeps fonts in its own registry; ours is registered once per process.
fn register_font() -> Result<()> {
    static REGISTERED: Once = Once::new();
    let mut result = Ok(());
    REGISTERED.call_once(|| {
        result = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the embedded font is not a valid TrueType file"));
    });
    result
}

/// The figure as SVG text and as PNG bytes, `size` pixels.
pub fn render(figure: &impl Figure, size: (u32, u32)) -> Result<(String, Vec<u8>)> {
    register_font()?;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        area.fill(&WHITE).map_err(plot_err)?;
        figure.draw(&area)?;
        area.present().map_err(plot_err)?;
    }
    let (w, h) = size;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        area.fill(&WHITE).map_err(plot_err)?;
        figure.draw(&area)?;
        area.present().map_err(plot_err)?;
    }
    Ok((svg, encode_png(&rgb, size)?))
}

/// RGB pixels as a PNG file.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
}

fn caption_font() -> TextStyle<'static> {
    (FAMILY, CAPTION_PX).into_font().into()
}

fn label_font() -> TextStyle<'static> {
    (FAMILY, LABEL_PX).into_font().into()
}

/// Margin around the data on each axis, as a share of its span.
const AXIS_MARGIN: f64 = 0.05;
/// Half-width of the axis around a flat series, as a share of its value (one epoch, a
/// constant learning rate).
const FLAT_MARGIN: f64 = 0.1;

/// `(lo, hi)` of `values` widened so that a flat series still gets a readable axis.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > f64::EPSILON * hi.abs().max(1.0) {
        span * AXIS_MARGIN
    } else if hi != 0.0 {
        hi.abs() * FLAT_MARGIN
    } else {
        1.0
    };
    (lo - pad, hi + pad)
}

/// Numbered ticks along a category axis when there are too many names to write.
const CATEGORY_TICKS: usize = 10;

/// Ticks of a category axis of `n` categories: one per category when they are named.
fn category_ticks(n: usize) -> usize {
    if n <= MAX_NAMED_CATEGORIES {
        n.max(1)
    } else {
        CATEGORY_TICKS
    }
}

/// The tick label at category position `x`: its name when there are few, else its index.
fn category_label(names: &[String]) -> impl Fn(&f64) -> String + use<> {
    let names = names.to_vec();
    move |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
            return String::new();
        }
        if names.len() <= MAX_NAMED_CATEGORIES {
            names[i as usize].clone()
        } else {
            format!("{}", i as usize)
        }
    }
}

/// The series' legend box at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .label_font(label_font())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(position)
        .draw()
        .map_err(plot_err)
}

/// Named series of (x, y) points.
pub type Series = Vec<(String, Vec<(f64, f64)>)>;

/// One panel of lines: a title, axis names and named series.
pub struct Lines {
    pub title: String,
    pub x: String,
    pub y: String,
    pub series: Series,
}

impl Figure for Lines {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let (x0, x1) = range(self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
        let (y0, y1) = range(self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, caption_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x)
            .y_desc(&self.y)
            .label_style(label_font())
            .axis_desc_style(label_font())
            .draw()
            .map_err(plot_err)?;
        for (i, (name, points)) in self.series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(plot_err)?;
        }
        if !self.series.is_empty() {
            legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    }
}

/// Panels side by side.
pub struct Panels(pub Vec<Lines>);

impl Figure for Panels {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let cells = area.split_evenly((1, self.0.len().max(1)));
        for (panel, cell) in self.0.iter().zip(&cells) {
            panel.draw(cell)?;
        }
        Ok(())
    }
}

/// Categories along x (in the given order), one line per named series over them; `None`
/// values (a class without test videos) are left out.
pub struct Categories {
    pub title: String,
    pub x: String,
    pub y: String,
    pub names: Vec<String>,
    pub series: Vec<(String, Vec<Option<f64>>)>,
    /// The y axis' range.
    pub y_range: (f64, f64),
    /// Join each series' points (an ordered axis); points only when the categories are
    /// unrelated (models).
    pub lines: bool,
}

/// Most category names written along an axis; more are numbered (in the given order).
const MAX_NAMED_CATEGORIES: usize = 12;
/// Most confusion-matrix cells labelled with their count.
const MAX_COUNTED_CLASSES: usize = 30;

impl Figure for Categories {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.names.len();
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, caption_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), self.y_range.0..self.y_range.1)
            .map_err(plot_err)?;
        let formatter = category_label(&self.names);
        chart
            .configure_mesh()
            .x_labels(category_ticks(n))
            .x_label_formatter(&formatter)
            .x_desc(&self.x)
            .y_desc(&self.y)
            .label_style(label_font())
            .axis_desc_style(label_font())
            .disable_x_mesh()
            .draw()
            .map_err(plot_err)?;
        for (i, (name, values)) in self.series.iter().enumerate() {
            let c = colour(i);
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(k, v)| v.map(|v| (k as f64, v)))
                .collect();
            if self.lines {
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                    .map_err(plot_err)?;
            }
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}

/// Histograms of named samples over common bins, overlaid (translucent bars).
pub struct Histogram {
    pub title: String,
    pub x: String,
    pub samples: Vec<(String, Vec<f64>)>,
    pub bins: usize,
}

impl Figure for Histogram {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let (lo, hi) = range(self.samples.iter().flat_map(|(_, v)| v.iter().copied()));
        let width = (hi - lo) / self.bins.max(1) as f64;
        let counts: Vec<Vec<usize>> = self
            .samples
            .iter()
            .map(|(_, values)| {
                let mut c = vec![0; self.bins.max(1)];
                for v in values.iter().filter(|v| v.is_finite()) {
                    let b = (((v - lo) / width) as usize).min(c.len() - 1);
                    c[b] += 1;
                }
                c
            })
            .collect();
        let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, caption_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(lo..hi, 0.0..(top as f64 * 1.1))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x)
            .y_desc("videos")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(label_font())
            .axis_desc_style(label_font())
            .disable_x_mesh()
            .draw()
            .map_err(plot_err)?;
        for (i, ((name, _), c)) in self.samples.iter().zip(&counts).enumerate() {
            let colour = colour(i);
            chart
                .draw_series(
                    c.iter()
                        .enumerate()
                        .filter(|&(_, &n)| n > 0)
                        .map(|(b, &n)| {
                            let x0 = lo + b as f64 * width;
                            Rectangle::new(
                                [(x0, 0.0), (x0 + width, n as f64)],
                                colour.mix(0.45).filled(),
                            )
                        }),
                )
                .map_err(plot_err)?
                .label(format!("{name} ({} videos)", self.samples[i].1.len()))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.mix(0.45).filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}

/// A confusion matrix as a heat map: row `t` (true class), column `p` (predicted), each cell
/// shaded by its share of the row.
pub struct Heatmap {
    pub title: String,
    pub names: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

impl Figure for Heatmap {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.names.len();
        let named = n <= MAX_NAMED_CATEGORIES;
        let longest = self
            .names
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(1);
        let y_label_area = if named {
            (longest as u32 * 9 + 30).min(220)
        } else {
            50
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, caption_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(y_label_area)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), (n as f64 - 0.5)..-0.5)
            .map_err(plot_err)?;
        let formatter = category_label(&self.names);
        chart
            .configure_mesh()
            .x_labels(category_ticks(n))
            .y_labels(category_ticks(n))
            .x_label_formatter(&formatter)
            .y_label_formatter(&formatter)
            .label_style(label_font())
            .x_desc("predicted")
            .y_desc("true class")
            .axis_desc_style(label_font())
            .disable_mesh()
            .draw()
            .map_err(plot_err)?;
        let cells = self.counts.iter().enumerate().flat_map(|(t, row)| {
            let total = row.iter().sum::<usize>().max(1) as f64;
            row.iter()
                .enumerate()
                .map(move |(p, &c)| (t, p, c as f64 / total))
        });
        chart
            .draw_series(cells.map(|(t, p, share)| {
                let shade = 1.0 - share;
                let c = RGBColor(
                    (255.0 * shade + 8.0 * share) as u8,
                    (255.0 * shade + 48.0 * share) as u8,
                    (255.0 * shade + 107.0 * share) as u8,
                );
                let (x, y) = (p as f64, t as f64);
                Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], c.filled())
            }))
            .map_err(plot_err)?;
        if n <= MAX_COUNTED_CLASSES {
            let counts = self.counts.iter().enumerate().flat_map(|(t, row)| {
                let total = row.iter().sum::<usize>().max(1) as f64;
                row.iter()
                    .enumerate()
                    .map(move |(p, &c)| (t, p, c, c as f64 / total))
            });
            chart
                .draw_series(counts.filter(|c| c.2 > 0).map(|(t, p, c, share)| {
                    let style = if share > 0.5 {
                        label_font().color(&WHITE)
                    } else {
                        label_font().color(&BLACK)
                    };
                    Text::new(c.to_string(), (p as f64 - 0.1, t as f64 - 0.15), style)
                }))
                .map_err(plot_err)?;
        }
        Ok(())
    }
}
