//! Feature visualisation: receptive fields against the pixels that actually move an output,
//! feature maps against a convolution computed by hand, the strongest patches against a search
//! over every sample, and the pictures.

use cnn::prelude::*;
use cnn::visual::{self, Field};
use cnn::{cnn, Error, Shape};

cnn! {
    /// Linear (no activation), so that every pixel a position reads moves it: strided,
    /// rectangular and padded windows, max pooling, a residual block with a padded, strided
    /// projection beside a wider body, and a `concat`.
    struct Geometry <
        input(13x11x2)
        conv(3x3, 3, stride=2, pad=1)
        residual(conv(3x3, 3, pad=1) conv(3x3, 3, pad=1))
        maxpool(2, stride=1)
        residual(conv(3x3, 4, stride=2, pad=2), shortcut=conv(1x1, 4, stride=2, pad=1))
        concat(conv(3x1, 2, pad=1x0), conv(1x1, 1))
        conv(2x3, 2)
        fc(2)
    >
}

cnn! { struct Tiny < input(10x8x2) conv(3x3, 4, pad=1) relu pool(2) conv(3x2, 3) batchnorm relu fc(3) softmax > }

cnn! {
    struct WithHeads <
        input(6x6x1) conv(3x3, 2) relu
        heads(a: conv(2x2, 2) relu fc(2) softmax, b: fc(1))
    >
}

/// The value of activation buffer position `(c, y, x)` of every convolution of `Geometry`
/// for one sample.
fn conv_outputs(model: &mut Geometry, x: &[f32]) -> Vec<visual::FeatureMaps> {
    visual::feature_maps(model, x).unwrap()
}

/// Whether input pixel (`r`, `c`) lies in `field`.
fn inside(field: Field, r: usize, c: usize) -> bool {
    let (r, c) = (r as isize, c as isize);
    r >= field.top && r < field.top + field.height as isize && c >= field.left && c < field.left + field.width as isize
}

#[test]
fn a_receptive_field_is_exactly_the_pixels_that_move_the_output() {
    let mut model = Geometry::with_seed(3);
    let input = Geometry::INPUT;
    let x: Vec<f32> = (0..Geometry::INPUT_LEN).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
    let base = conv_outputs(&mut model, &x);
    assert_eq!(base.len(), visual::convolutions::<Geometry>().len());
    assert_eq!(base.len(), 8);
    // For each pixel (both channels moved at once, by far more than any value, up and then
    // down, so that one of the two wins every max pooling it reaches), which outputs move at
    // all: an output that does not read the pixel is computed from the same values, bit for bit.
    let plane = input.w * input.h;
    let mut moved = vec![Vec::new(); plane];
    for (p, moved) in moved.iter_mut().enumerate() {
        for step in [1e4, -1e4] {
            let mut y = x.clone();
            y[p] += step;
            y[plane + p] += step;
            moved.push(conv_outputs(&mut model, &y));
        }
    }
    let mut checked = 0;
    for (k, maps) in base.iter().enumerate() {
        let s = maps.shape;
        for (oy, ox) in (0..s.h).flat_map(|r| (0..s.w).map(move |c| (r, c))) {
            let field = visual::receptive_field::<Geometry>(maps.through, oy, ox).unwrap();
            for (p, after) in moved.iter().enumerate() {
                let (r, c) = (p / input.w, p % input.w);
                let changed = after.iter().any(|after| {
                    (0..s.d).any(|ch| {
                        let i = ch * s.w * s.h + oy * s.w + ox;
                        after[k].values[i] != maps.values[i]
                    })
                });
                assert_eq!(
                    changed,
                    inside(field, r, c),
                    "{} output ({oy}, {ox}), field {field:?}, pixel ({r}, {c})",
                    maps.layer_text()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn receptive_fields_grow_with_each_layer_as_the_geometry_says() {
    // LeNet-5's second convolution (after a 5x5 padded convolution and 2x2 pooling) sees 14x14.
    cnn! { struct LeNet < input(28x28x1) conv(5x5, 6, pad=2) relu pool(2) conv(5x5, 16) relu pool(2) fc(10) softmax > }
    let f = |row, y, x| visual::receptive_field::<LeNet>(row, y, x).unwrap();
    let w = |row, y, x| visual::receptive_window::<LeNet>(row, y, x).unwrap();
    let rect = |top, left, height, width| Field { top, left, height, width };
    // The first convolution: 5x5 windows, of which the padding takes two rows and columns at a
    // corner.
    assert_eq!((w(1, 0, 0), f(1, 0, 0)), (rect(-2, -2, 5, 5), rect(0, 0, 3, 3)));
    assert_eq!((w(1, 27, 27), f(1, 27, 27)), (rect(25, 25, 5, 5), rect(25, 25, 3, 3)));
    assert_eq!((w(1, 10, 4), f(1, 10, 4)), (rect(8, 2, 5, 5), rect(8, 2, 5, 5)));
    // The second, after 2x2 pooling: 14x14 windows.
    assert_eq!((w(4, 0, 0), f(4, 0, 0)), (rect(-2, -2, 14, 14), rect(0, 0, 12, 12)));
    assert_eq!((w(4, 9, 2), f(4, 9, 2)), (rect(16, 2, 14, 14), rect(16, 2, 12, 14)));
    // Its ReLU reads the same; the pooling after it adds one step of 2 (the first pooling's
    // stride) to each side's length.
    assert_eq!(w(5, 4, 4), rect(6, 6, 14, 14));
    assert_eq!(w(6, 0, 0), rect(-2, -2, 16, 16));
    assert_eq!(visual::convolutions::<LeNet>(), [1, 4]);
    // Past the output, or on a flat layer: an error that says so.
    let err = visual::receptive_field::<LeNet>(4, 10, 0).unwrap_err().to_string();
    assert!(err.contains("(10, 0) is not a position of the 10x10 output"), "{err}");
    assert!(visual::receptive_field::<LeNet>(7, 0, 0).is_err());
    assert!(visual::receptive_field::<LeNet>(99, 0, 0).is_err());
}

#[test]
fn feature_maps_are_the_convolution_as_the_next_layer_reads_it() {
    let mut model = Tiny::with_seed(5);
    let x: Vec<f32> = (0..Tiny::INPUT_LEN).map(|i| (i as f32 * 0.37).sin()).collect();
    let maps = visual::feature_maps(&mut model, &x).unwrap();
    assert_eq!(maps.len(), 2);
    // The first: the convolution and its fused ReLU, computed here by hand.
    let (first, s) = (&maps[0], Shape::volume(10, 8, 4));
    assert_eq!((first.row, first.through, first.shape), (1, 2, s));
    assert_eq!(first.layer_text(), "conv(3x3, 4, pad=1) relu");
    let p = model.layer_params(1).unwrap();
    let (w, b) = p.split_at(4 * 2 * 9);
    for k in 0..4 {
        for (oy, ox) in (0..8).flat_map(|r| (0..10).map(move |c| (r, c))) {
            let mut sum = b[k];
            for (d, fy, fx) in (0..2).flat_map(|d| (0..3).flat_map(move |fy| (0..3).map(move |fx| (d, fy, fx)))) {
                let (iy, ix) = (oy as isize + fy as isize - 1, ox as isize + fx as isize - 1);
                if (0..8).contains(&iy) && (0..10).contains(&ix) {
                    sum += w[((k * 2 + d) * 3 + fy) * 3 + fx] * x[d * 80 + iy as usize * 10 + ix as usize];
                }
            }
            let got = first.map(k).unwrap()[oy * 10 + ox];
            assert!((got - sum.max(0.0)).abs() < 1e-5, "map {k} ({oy}, {ox}): {got} vs {}", sum.max(0.0));
        }
    }
    assert!(first.map(4).is_none());
    // The second: after its batch normalisation and ReLU.
    assert_eq!((maps[1].row, maps[1].through, maps[1].shape), (4, 6, Shape::volume(3, 3, 3)));
    assert_eq!(maps[1].layer_text(), "conv(3x2, 3) batchnorm relu");
    assert!(maps[1].values.iter().all(|&v| v >= 0.0));
    // One sample only.
    assert!(matches!(visual::feature_maps(&mut model, &x[1..]), Err(Error::InputLength { .. })));
    assert!(visual::feature_maps(&mut model, &[x.clone(), x.clone()].concat()).is_err());
}

#[test]
fn heads_and_their_convolutions_are_found() {
    let mut model = WithHeads::with_seed(1);
    assert_eq!(visual::convolutions::<WithHeads>(), [1, 4]);
    let maps = visual::feature_maps(&mut model, &[0.25; 36]).unwrap();
    assert_eq!(maps[1].layer_text(), "conv(2x2, 2) relu");
    // The head's convolution reads 2x2 outputs of the trunk's 3x3 one: 4x4 pixels.
    let field = visual::receptive_field::<WithHeads>(4, 2, 1).unwrap();
    assert_eq!(field, Field { top: 2, left: 1, height: 4, width: 4 });
}

#[test]
fn the_strongest_patches_are_those_a_search_over_every_sample_finds() {
    let mut model = Tiny::with_seed(9);
    let n = 23;
    let images: Vec<f32> = (0..n * Tiny::INPUT_LEN).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    for row in visual::convolutions::<Tiny>() {
        // Batches of 5 leave a short last batch.
        let patches = visual::strongest_patches(&mut model, &images, row, 4, 5).unwrap();
        // By hand: each sample's strongest response per filter.
        let mut per_filter: Vec<Vec<(f32, usize, usize)>> = Vec::new();
        let mut shape = Shape::vector(1);
        for i in 0..n {
            let maps =
                visual::feature_maps(&mut model, &images[i * Tiny::INPUT_LEN..(i + 1) * Tiny::INPUT_LEN]).unwrap();
            let m = maps.iter().find(|m| m.row == row).unwrap();
            (shape, _) = (m.shape, per_filter.resize(m.shape.d, Vec::new()));
            for (c, list) in per_filter.iter_mut().enumerate() {
                let map = m.map(c).unwrap();
                let best = (0..map.len()).fold(0, |b, j| if map[j] > map[b] { j } else { b });
                list.push((map[best], i, best));
            }
        }
        assert_eq!(patches.len(), per_filter.len());
        for (c, (got, mut want)) in patches.iter().zip(per_filter).enumerate() {
            want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            assert_eq!(got.len(), 4);
            for (g, w) in got.iter().zip(&want) {
                assert!((g.value - w.0).abs() < 1e-5, "row {row} filter {c}: {g:?} vs {w:?}");
                assert!(g.value >= got.last().unwrap().value);
            }
            // The fourth strongest is at least as strong as every sample left out.
            assert!(want[4..].iter().all(|w| w.0 <= got[3].value + 1e-6));
            assert!(got.iter().all(|g| g.at.0 < shape.h && g.at.1 < shape.w));
        }
    }
    // A layer that is not a convolution, no patches, a ragged set: errors.
    let err = visual::strongest_patches(&mut model, &images, 3, 4, 5).unwrap_err().to_string();
    assert!(err.contains("`pool(2)`, not a convolution"), "{err}");
    assert!(visual::strongest_patches(&mut model, &images, 1, 0, 5).is_err());
    assert!(visual::strongest_patches(&mut model, &images, 1, 4, 0).is_err());
    assert!(visual::strongest_patches(&mut model, &images[1..], 1, 4, 5).is_err());
}

#[cfg(feature = "visual")]
#[test]
fn the_pictures_are_pngs_of_the_expected_size_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Tiny::with_seed(2);
    let x: Vec<f32> = (0..Tiny::INPUT_LEN).map(|i| (i as f32 * 0.11).cos()).collect();
    let maps = visual::feature_maps(&mut model, &x).unwrap();
    let path = dir.path().join("maps.png");
    visual::save_feature_maps(&path, &x, Tiny::INPUT, &maps, "class 2 (0.61)").unwrap();
    let picture = image::open(&path).unwrap().to_rgb8();
    assert_eq!(picture.width(), 960);
    // Viridis colours, not only white and black.
    assert!(picture.pixels().any(|p| p[2] > p[1] && p[0] < 100 && p[2] > 80));
    let images: Vec<f32> = (0..10).flat_map(|_| x.iter().copied()).collect();
    let patches = visual::strongest_patches(&mut model, &images, 4, 3, 4).unwrap();
    let path = dir.path().join("patches.png");
    visual::save_patches(&path, &images, Tiny::INPUT, &patches, "conv(3x2, 3)").unwrap();
    assert!(image::open(&path).unwrap().height() > 3 * 20);
    // An input of the wrong size, patches of samples that are not there, an unwritable path.
    assert!(visual::save_feature_maps(&path, &x[1..], Tiny::INPUT, &maps, "").is_err());
    assert!(visual::save_patches(&path, &images[..Tiny::INPUT_LEN], Tiny::INPUT, &patches, "").is_err());
    let mut bad = maps.clone();
    bad[0].shape.h = usize::MAX / 4;
    assert!(visual::save_feature_maps(&path, &x, Tiny::INPUT, &bad, "").is_err());
    // Patches of another model's input: refused, not drawn out of bounds.
    let mut wrong = patches.clone();
    wrong[0][0].field.top = 7;
    let err = visual::save_patches(&path, &images, Tiny::INPUT, &wrong, "").unwrap_err().to_string();
    assert!(err.contains("is not a patch of these 10 images of 10x8"), "{err}");
    wrong[0][0] = patches[0][0];
    wrong[0][0].window.width = 1 << 20;
    assert!(visual::save_patches(&path, &images, Tiny::INPUT, &wrong, "").is_err());
    let err = visual::save_feature_maps(&dir.path().join("no/such/dir/m.png"), &x, Tiny::INPUT, &maps, "");
    assert!(matches!(err, Err(Error::File { .. })), "{err:?}");

    // Colour images, and more maps than a picture shows (the first 64 of 80).
    cnn! { struct Rgb < input(12x12x3) conv(3x3, 80, pad=1) relu pool(2) conv(3x3, 4) fc(2) softmax > }
    let mut rgb = Rgb::with_seed(4);
    let images: Vec<f32> = (0..6 * Rgb::INPUT_LEN).map(|i| (i % 97) as f32 / 97.0).collect();
    let maps = visual::feature_maps(&mut rgb, &images[..Rgb::INPUT_LEN]).unwrap();
    assert_eq!(maps[0].shape, Shape::volume(12, 12, 80));
    let path = dir.path().join("rgb-maps.png");
    visual::save_feature_maps(&path, &images[..Rgb::INPUT_LEN], Rgb::INPUT, &maps, "colour").unwrap();
    let patches = visual::strongest_patches(&mut rgb, &images, 4, 2, 4).unwrap();
    assert_eq!((patches.len(), patches[0][0].window.height), (4, 8));
    let path = dir.path().join("rgb-patches.png");
    visual::save_patches(&path, &images, Rgb::INPUT, &patches, "colour").unwrap();
    let picture = image::open(&path).unwrap().to_rgb8();
    // Pixels in colour, not grey, and not the light red of padding either.
    let padding = |p: &image::Rgb<u8>| p.0 == [250, 200, 200] || p.0 == [255, 235, 235];
    assert!(picture.pixels().any(|p| (p[0] != p[1] || p[1] != p[2]) && !padding(p)));
}
