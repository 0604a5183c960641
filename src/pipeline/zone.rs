//! Zones: named rectangles of a camera's frame, each classified on its own
//! crop. A shape that fills a tenth of the frame fills half of a zone drawn
//! around where it appears, and CLIP, which sees the whole input at 224
//! pixels, sees it five times larger; a zone also keeps a distractor
//! elsewhere in the frame out of its scores. A camera without zones has one,
//! the whole frame.
//!
//! A zone's rectangle is in fractions of the frame (`[x0, y0, x1, y1]`, left
//! top to right bottom), so that it holds whatever size the camera sends.
//! Its crop is copied out of the converted frame and then goes through the
//! same motion gate, preprocessing (resize the shorter side, centre crop),
//! encoder and detector as a whole frame.

use super::convert::RgbImage;

/// A rectangle in fractions of the frame: `x0 < x1` and `y0 < y1`, all in
/// `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Rect {
    /// The whole frame.
    pub const WHOLE: Rect = Rect { x0: 0.0, y0: 0.0, x1: 1.0, y1: 1.0 };

    /// Whether this is the whole frame.
    pub fn is_whole(&self) -> bool {
        *self == Rect::WHOLE
    }

    /// The shorter side as a fraction of the frame's matching side: a crop
    /// is this much smaller than the frame, at worst.
    pub fn min_fraction(&self) -> f32 {
        (self.x1 - self.x0).min(self.y1 - self.y0)
    }

    /// The rectangle in pixels of a `width` × `height` frame: left, top,
    /// width, height, at least one pixel each way and inside the frame.
    pub fn pixels(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let edge = |f: f32, size: u32| ((f * size as f32).round() as u32).min(size);
        let (x0, x1) = (edge(self.x0, width), edge(self.x1, width));
        let (y0, y1) = (edge(self.y0, height), edge(self.y1, height));
        let x0 = x0.min(width.saturating_sub(1));
        let y0 = y0.min(height.saturating_sub(1));
        (x0, y0, x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1))
    }
}

/// Copies the part of `frame` under `rect` into `out` (reusing its buffer).
pub fn crop(frame: &RgbImage, rect: &Rect, out: &mut RgbImage) {
    let (x, y, w, h) = rect.pixels(frame.width, frame.height);
    out.width = w;
    out.height = h;
    out.data.clear();
    let row = frame.width as usize * 3;
    for line in y..y + h {
        let start = line as usize * row + x as usize * 3;
        out.data.extend_from_slice(&frame.data[start..start + w as usize * 3]);
    }
}

/// The shorter side a frame is converted to at least, so that the smallest
/// of `zones` still has `encoder_size` pixels on its shorter side (a crop is
/// then shrunk, never enlarged, to the encoder's input).
pub fn min_frame_side(encoder_size: u32, zones: &[Rect]) -> u32 {
    let smallest = zones.iter().map(Rect::min_fraction).fold(1.0f32, f32::min).max(0.01);
    (encoder_size as f32 / smallest).ceil() as u32
}

/// Draws `rect`'s outline on `image`, `thickness` pixels wide, inside the
/// rectangle: where a zone's snapshot shows the zone.
pub fn outline(image: &mut RgbImage, rect: &Rect, thickness: u32, colour: [u8; 3]) {
    let (x, y, w, h) = rect.pixels(image.width, image.height);
    let t = thickness.min(w / 2).min(h / 2).max(1);
    let width = image.width as usize;
    let mut paint = |px: u32, py: u32| {
        let i = (py as usize * width + px as usize) * 3;
        image.data[i..i + 3].copy_from_slice(&colour);
    };
    for py in y..y + h {
        for px in x..x + w {
            let inside = px >= x + t && px < x + w - t && py >= y + t && py < y + h - t;
            if !inside {
                paint(px, py);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: u32, height: u32) -> RgbImage {
        // Each pixel's red is its x, green its y.
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&[x as u8, y as u8, 0]);
            }
        }
        RgbImage { width, height, data }
    }

    #[test]
    fn a_zone_is_cropped_where_its_fractions_say() {
        let frame = image(100, 50);
        let rect = Rect { x0: 0.5, y0: 0.2, x1: 1.0, y1: 0.9 };
        assert_eq!(rect.pixels(100, 50), (50, 10, 50, 35));
        let mut out = RgbImage::new();
        crop(&frame, &rect, &mut out);
        assert_eq!((out.width, out.height, out.data.len()), (50, 35, 50 * 35 * 3));
        assert_eq!(&out.data[..3], [50, 10, 0]);
        assert_eq!(&out.data[out.data.len() - 3..], [99, 44, 0]);
        // The whole frame is the frame.
        crop(&frame, &Rect::WHOLE, &mut out);
        assert_eq!(out.data, frame.data);
        // A sliver still has a pixel.
        assert_eq!(Rect { x0: 1.0, y0: 0.0, x1: 1.0, y1: 1.0 }.pixels(100, 50), (99, 0, 1, 50));
    }

    #[test]
    fn frames_are_kept_large_enough_for_the_smallest_zone() {
        assert_eq!(min_frame_side(224, &[Rect::WHOLE]), 224);
        let quarter = Rect { x0: 0.0, y0: 0.0, x1: 0.25, y1: 0.5 };
        assert_eq!(min_frame_side(224, &[Rect::WHOLE, quarter]), 896);
    }

    #[test]
    fn an_outline_is_drawn_inside_the_rectangle() {
        let mut img = RgbImage { width: 10, height: 10, data: vec![0; 300] };
        outline(&mut img, &Rect { x0: 0.2, y0: 0.2, x1: 0.8, y1: 0.8 }, 1, [255, 255, 0]);
        let at = |x: usize, y: usize| img.data[(y * 10 + x) * 3];
        assert_eq!((at(2, 2), at(7, 7), at(2, 5), at(3, 3), at(1, 1), at(8, 8)), (255, 255, 255, 0, 0, 0));
    }
}
