//! Identicon avatars drawn by the server: `GET /avatars/{name}.svg`.
//!
//! The original asked gravatar for a picture; ours never sends a name to a
//! third party. The name is only hashed: the SVG holds the grid and a colour
//! and never the name itself, so a name full of markup cannot reach the image.

use std::fmt::Write as _;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Longest name we bother drawing; longer ones cannot be any user's.
const MAX_NAME_BYTES: usize = 512;

/// The identicon of `name`: a 5×5 grid mirrored left to right, in a colour
/// derived from the same hash. Deterministic: one name, one picture, forever.
pub fn identicon_svg(name: &str) -> String {
    let hash = Sha256::digest(name.as_bytes());
    // 15 bits choose the cells of the left three columns; the right two mirror them.
    let bits = u32::from(hash[0]) | (u32::from(hash[1]) << 8);
    let hue = (u32::from(hash[2]) << 8 | u32::from(hash[3])) % 360;
    let saturation = 0.45 + f64::from(hash[4] % 20) / 100.0;
    // Dark enough to stand out on the pale background in both themes.
    let lightness = 0.38 + f64::from(hash[5] % 12) / 100.0;
    let fg = hsl_to_hex(f64::from(hue), saturation, lightness);

    let mut path = String::new();
    let mut any = false;
    for row in 0..5u32 {
        for col in 0..3u32 {
            if bits >> (row * 3 + col) & 1 == 1 {
                any = true;
                for x in if col == 2 {
                    vec![2]
                } else {
                    vec![col, 4 - col]
                } {
                    let _ = write!(path, "M{x} {row}h1v1h-1z");
                }
            }
        }
    }
    if !any {
        // An empty picture looks like a broken image: fill the centre instead.
        path.push_str("M2 2h1v1h-1z");
    }
    format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="-0.5 -0.5 6 6" width="64" height="64" shape-rendering="crispEdges">"#,
            r##"<rect x="-0.5" y="-0.5" width="6" height="6" fill="#f0f0f0"/>"##,
            r#"<path fill="{}" d="{}"/></svg>"#
        ),
        fg, path
    )
}

fn hsl_to_hex(h: f64, s: f64, l: f64) -> String {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(b))
}

/// `GET /avatars/{name}.svg`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return (StatusCode::NOT_FOUND, "no such avatar").into_response();
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return (StatusCode::NOT_FOUND, "no such avatar").into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            // The picture depends on the name alone, so it never changes.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=604800, immutable"),
            ),
        ],
        identicon_svg(name),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(svg: &str) -> Vec<(u32, u32)> {
        let d = svg
            .split("d=\"")
            .nth(1)
            .unwrap_or("")
            .split('"')
            .next()
            .unwrap_or("");
        d.split('M')
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let xy = s.split('h').next()?;
                let (x, y) = xy.split_once(' ')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn the_same_name_always_gives_the_same_picture() {
        assert_eq!(identicon_svg("小明"), identicon_svg("小明"));
        assert_ne!(identicon_svg("小明"), identicon_svg("小红"));
        assert_ne!(identicon_svg("alice"), identicon_svg("bob"));
    }

    #[test]
    fn the_picture_is_svg_and_never_contains_the_name() {
        for name in [
            "alice",
            "小明",
            "<script>alert(1)</script>",
            "\"><svg onload=x>",
            "a&b",
        ] {
            let svg = identicon_svg(name);
            assert!(
                svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
                "{svg}"
            );
            assert!(svg.ends_with("</svg>"));
            assert!(!svg.contains(name), "{name} leaked into {svg}");
            assert!(!svg.contains("script") && !svg.contains("onload"));
            // Balanced: exactly the three elements we write.
            assert_eq!(svg.matches('<').count(), 4, "{svg}");
        }
    }

    #[test]
    fn the_grid_is_5_by_5_and_mirrored() {
        for name in ["alice", "bob", "小明", "闲聊-1", "x"] {
            let cells = cells(&identicon_svg(name));
            assert!(!cells.is_empty());
            for &(x, y) in &cells {
                assert!(x < 5 && y < 5);
                assert!(
                    cells.contains(&(4 - x, y)),
                    "{name}: ({x},{y}) not mirrored"
                );
            }
        }
    }

    #[test]
    fn colours_are_valid_hex() {
        for h in [0.0, 59.9, 60.0, 180.0, 300.0, 359.0] {
            let c = hsl_to_hex(h, 0.5, 0.4);
            assert_eq!(c.len(), 7);
            assert!(c[1..].chars().all(|ch| ch.is_ascii_hexdigit()), "{c}");
        }
        assert_eq!(hsl_to_hex(0.0, 1.0, 0.5), "#ff0000");
    }
}
