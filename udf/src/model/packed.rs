//! q8 weights packed once per model and memory-mapped at every later load.
//!
//! Quantizing a 0.5B model's projections takes seconds and needs each one in f32 first;
//! the packed file holds their 8-bit blocks and scales exactly as [`Q8Rows`] keeps them
//! for the CPU's kernel (in rows, or in the VNNI kernel's panels),
//! so a later load maps it and reads nothing else of the projections (their pages come in
//! at first use, and every process on the machine shares them). It is a safetensors file:
//! `{weight}.q8` (I8, `[rows, blocks × 32]`) and `{weight}.scales` (F32, `[rows,
//! blocks]`; rows padded to whole panels in the panel order) for every `*_proj.weight`
//! of the model, and, where a projection keeps input columns exact (see
//! [`crate::quant::large_gain_columns`]), `{weight}.exact_columns` (U32, `[c]`) and
//! `{weight}.exact` (F32, `[c, rows]`, column by column); where the weights were rotated
//! before quantizing (an MLP's down projection, see [`Rotation`]), `{weight}.rotation`
//! (U32, `[1]`: the rotation's block); where output channels are computed in f32 (a
//! projection writing the residual stream, see [`ExactRows`]), `{weight}.exact_rows` (U32,
//! `[r]`) and `{weight}.exact_row_values` (F32, `[r, cols]`); where the projection runs
//! refined products (the first decoder layer's, see [`is_refined`]), the weights'
//! quantization error quantized in turn as `{weight}.refinement.q8` and
//! `{weight}.refinement.scales` (shaped as the weights'); with the format and the
//! weights' fingerprint in its metadata. Norms, biases and the token embedding stay in the
//! model's own files.

use super::files::ModelFiles;
use crate::quant::{
    large_gain_columns, ExactColumns, ExactRows, Kernel, Layout, Q8Rows, Rotation, Stored, BLOCK,
};
use crate::{Error, Result};
use candle_core::safetensors::MmapedSafetensors;
use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo, View};
use safetensors::SafeTensors;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The format written and read, by the order of the values; another value (an older
/// Lancet's, or one packed for another kernel) is packed again.
fn format(layout: Layout) -> &'static str {
    match layout {
        Layout::Rows => "lancet-q8-blocks32-exact-rotated-refined-v5",
        Layout::Panels => "lancet-q8-blocks32-panels32-flipped-exact-rotated-refined-v6",
    }
}

/// A model's packed q8 projections, memory-mapped.
#[derive(Debug)]
pub struct PackedWeights {
    path: PathBuf,
    map: Arc<Mmap>,
    layout: Layout,
    /// Where tensor data begins in the file.
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

impl PackedWeights {
    /// The packed file of `files` (whose weights have `fingerprint`) in `dir`: opened if
    /// it is there and whole, else packed from the model's weights first (an unusable
    /// file is replaced, and files packed from earlier weights of the same model are
    /// removed).
    pub fn open_or_pack(
        dir: &Path,
        files: &ModelFiles,
        fingerprint: &str,
        kernel: Kernel,
    ) -> Result<Self> {
        let path = dir.join(format!("{}{fingerprint}.q8.safetensors", file_stem(files)));
        if path.exists() {
            match Self::open(&path, fingerprint, kernel.weight_layout()) {
                Ok(packed) => return Ok(packed),
                Err(e) => tracing::warn!("packing {} again: {e}", path.display()),
            }
        }
        std::fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
        pack(files, fingerprint, kernel, &path)?;
        remove_earlier_packs(dir, files, &path);
        Self::open(&path, fingerprint, kernel.weight_layout())
    }

    /// Maps the packed file at `path`, checking its format (values in `layout`), its
    /// fingerprint and that every tensor lies inside it.
    pub fn open(path: &Path, fingerprint: &str, layout: Layout) -> Result<Self> {
        let unusable = |why: String| Error::Model(format!("{}: {why}", path.display()));
        let file = std::fs::File::open(path).map_err(|source| io(path, source))?;
        // SAFETY: the file is mapped read-only. Lancet replaces packed files by renaming
        // a new one over them, never by writing in place, so a mapping keeps the bytes
        // it was opened with.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| io(path, source))?;
        // `deserialize` checks that the header parses and the tensors tile the data.
        SafeTensors::deserialize(&map).map_err(|e| unusable(format!("not safetensors: {e}")))?;
        let (header, metadata) =
            SafeTensors::read_metadata(&map).map_err(|e| unusable(e.to_string()))?;
        let info = metadata.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some(format(layout)) {
            return Err(unusable(format!("not in the {} format", format(layout))));
        }
        if info.get("fingerprint").map(String::as_str) != Some(fingerprint) {
            return Err(unusable("packed from other weights".into()));
        }
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.clone()))
            .collect();
        Ok(PackedWeights {
            path: path.to_path_buf(),
            map: Arc::new(map),
            layout,
            data_start: 8 + header,
            tensors,
        })
    }

    /// The packed file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The projection `weight` (e.g. `model.layers.0.mlp.up_proj.weight`) as `rows`
    /// output channels of `cols` inputs, mapped from the file, with its input columns
    /// `exact` in f32, rotated by `rotation`, its output channels `exact_rows` in f32, and
    /// a refinement when `refined`; `None` when the file does not hold it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn q8(
        &self,
        weight: &str,
        rows: usize,
        cols: usize,
        exact: &[usize],
        rotation: Option<Rotation>,
        exact_rows: &[usize],
        refined: bool,
    ) -> Option<Result<Q8Projection>> {
        let weights = self.q8_rows(weight, rows, cols)?;
        let wrong = |why: String| Error::Model(format!("{}: {weight}: {why}", self.path.display()));
        let projection = (|| {
            let weights = weights?;
            let stored = self.rotation(weight).map_err(wrong)?;
            if stored != rotation.map(|r| r.block()) {
                return Err(wrong(format!(
                    "rotated in blocks of {stored:?}, the model rotates in {:?}",
                    rotation.map(|r| r.block())
                )));
            }
            let stored_rows = self.exact_rows(weight, rows, cols).map_err(wrong)?;
            if stored_rows.rows() != exact_rows {
                return Err(wrong(format!(
                    "exact rows {:?}, the model's next norm gives {exact_rows:?}",
                    stored_rows.rows()
                )));
            }
            let stored_columns = self.exact(weight, rows, cols).map_err(wrong)?;
            if stored_columns.columns() != exact {
                return Err(wrong(format!(
                    "exact columns {:?}, the model's norm gives {exact:?}",
                    stored_columns.columns()
                )));
            }
            let refinement = self
                .q8_rows(&format!("{weight}.refinement"), rows, cols)
                .transpose()?;
            if refinement.is_some() != refined {
                return Err(wrong(format!(
                    "packed {} a refinement, the model runs it {}",
                    if refinement.is_some() {
                        "with"
                    } else {
                        "without"
                    },
                    if refined { "refined" } else { "plain" }
                )));
            }
            Ok(Q8Projection {
                weights,
                exact: stored_columns,
                exact_rows: stored_rows,
                refinement,
            })
        })();
        Some(projection)
    }

    /// The quantized rows `{name}.q8` and `{name}.scales` (`rows` of `cols` values, in
    /// this file's layout), mapped; `None` when the file does not hold them.
    fn q8_rows(&self, name: &str, rows: usize, cols: usize) -> Option<Result<Q8Rows>> {
        let quants = self.tensors.get(&format!("{name}.q8"))?;
        let scales = self.tensors.get(&format!("{name}.scales"))?;
        let blocks = cols.div_ceil(BLOCK);
        let stored = Q8Rows::stored_rows(rows, self.layout);
        let wrong = |why: String| Error::Model(format!("{}: {name}: {why}", self.path.display()));
        Some((|| {
            if quants.dtype != Dtype::I8 || quants.shape != [stored, blocks * BLOCK] {
                return Err(wrong(format!(
                    "quants {:?} {:?}",
                    quants.dtype, quants.shape
                )));
            }
            if scales.dtype != Dtype::F32 || scales.shape != [stored, blocks] {
                return Err(wrong(format!(
                    "scales {:?} {:?}",
                    scales.dtype, scales.shape
                )));
            }
            let quants = Stored::mapped(self.map.clone(), self.bytes(quants)).map_err(wrong)?;
            let scales = Stored::mapped(self.map.clone(), self.bytes(scales)).map_err(wrong)?;
            Q8Rows::from_parts(rows, cols, self.layout, quants, scales).map_err(wrong)
        })())
    }

    /// The block of the rotation `weight` was packed with (`None`: not rotated).
    fn rotation(&self, weight: &str) -> std::result::Result<Option<usize>, String> {
        let Some(info) = self.tensors.get(&format!("{weight}.rotation")) else {
            return Ok(None);
        };
        match (info.dtype, self.map.get(self.bytes(info))) {
            (Dtype::U32, Some(&[a, b, c, d])) => {
                Ok(Some(u32::from_le_bytes([a, b, c, d]) as usize))
            }
            (dtype, _) => Err(format!("rotation {dtype:?} {:?}", info.shape)),
        }
    }

    /// The exact rows stored for `weight` (none when the file holds none).
    fn exact_rows(
        &self,
        weight: &str,
        rows: usize,
        cols: usize,
    ) -> std::result::Result<ExactRows, String> {
        match self.indexed(
            &format!("{weight}.exact_rows"),
            &format!("{weight}.exact_row_values"),
        )? {
            Some((kept, values)) => ExactRows::from_parts(kept, rows, cols, values),
            None => Ok(ExactRows::default()),
        }
    }

    /// The exact columns stored for `weight` (none when the file holds none).
    fn exact(
        &self,
        weight: &str,
        rows: usize,
        cols: usize,
    ) -> std::result::Result<ExactColumns, String> {
        match self.indexed(
            &format!("{weight}.exact_columns"),
            &format!("{weight}.exact"),
        )? {
            Some((columns, values)) => ExactColumns::from_parts(columns, rows, cols, values),
            None => Ok(ExactColumns::default()),
        }
    }

    /// Indices (U32 tensor `indices`) and their f32 values (tensor `values`), as
    /// [`push_indexed`] writes them; `None` when the file holds neither.
    fn indexed(&self, indices: &str, values: &str) -> std::result::Result<Option<Indexed>, String> {
        let (Some(indices), Some(values)) = (self.tensors.get(indices), self.tensors.get(values))
        else {
            return Ok(None);
        };
        if indices.dtype != Dtype::U32 || values.dtype != Dtype::F32 {
            return Err(format!(
                "indices {:?}, values {:?}",
                indices.dtype, values.dtype
            ));
        }
        let indices = self.map[self.bytes(indices)]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect();
        let values = values_to_f32(Dtype::F32, &self.map[self.bytes(values)]).unwrap_or_default();
        Ok(Some((indices, values)))
    }

    fn bytes(&self, info: &TensorInfo) -> std::ops::Range<usize> {
        let (start, end) = info.data_offsets;
        self.data_start + start..self.data_start + end
    }
}

/// Whether the source tensor `name` is a projection that q8 runs in 8 bits.
pub(crate) fn is_projection(name: &str) -> bool {
    name.ends_with("_proj.weight")
}

/// Whether the projection weight `name` runs refined products in q8: weights and inputs
/// each quantized twice ([`crate::quant::Activations::refined_matmul`]), f32's fidelity
/// at three times q8's arithmetic. The first decoder layer's: the errors the model
/// amplifies most, as that layer writes a residual stream holding only the token
/// embedding, while each later layer adds to a stream already grown. On the random
/// 0.5B model that one layer in f32 halves q8's mean 1 - cosine (4.4e-4 -> 2.2e-4;
/// the second layer would take another 0.6e-4); BENCHMARKS "Refining the first layer".
pub(crate) fn is_refined(name: &str) -> bool {
    layer_of(name) == Some(0)
}

/// The decoder layer of the tensor `name` (`...layers.{i}.`).
fn layer_of(name: &str) -> Option<usize> {
    let (_, rest) = name.split_once("layers.")?;
    rest.split('.').next()?.parse().ok()
}

/// A q8 projection's parts, quantized at load or packed ([`PackedWeights::q8`]).
pub(crate) struct Q8Projection {
    /// The weights in the kernel's layout.
    pub weights: Q8Rows,
    /// Input columns kept in f32.
    pub exact: ExactColumns,
    /// Output channels computed in f32.
    pub exact_rows: ExactRows,
    /// The weights' quantization error quantized in turn, where [`is_refined`].
    pub refinement: Option<Q8Rows>,
}

impl Q8Projection {
    /// Quantizes `values` (`rows × cols`, rotated already where the projection rotates
    /// its inputs) for `kernel`, keeping the input columns `exact` and the output
    /// channels `exact_rows` in f32, and with a refinement when `refined`.
    pub fn quantize(
        values: &[f32],
        rows: usize,
        cols: usize,
        exact: &[usize],
        exact_rows: &[usize],
        refined: bool,
        kernel: Kernel,
    ) -> Self {
        let weights = Q8Rows::quantize(values, rows, cols, kernel);
        // Zero in the exact columns: their products read f32 weights already.
        let refinement = refined.then(|| {
            let errors = weights.errors(values, |_| exact);
            Q8Rows::quantize(&errors, rows, cols, kernel).into_layout(kernel.weight_layout())
        });
        Q8Projection {
            weights: weights.into_layout(kernel.weight_layout()),
            exact: ExactColumns::of_rows(values, rows, cols, exact),
            exact_rows: ExactRows::of_rows(values, rows, cols, exact_rows),
            refinement,
        }
    }
}

/// Quantizes every projection of `files` and writes the packed file at `path` (through a
/// temporary file renamed over it, so a killed process leaves no partial file).
fn pack(files: &ModelFiles, fingerprint: &str, kernel: Kernel, path: &Path) -> Result<()> {
    let model = |e: candle_core::Error| {
        Error::Model(format!(
            "cannot read weights of {} to pack them: {e}",
            files.id
        ))
    };
    // SAFETY: as in `PackedWeights::open`; model files are only read.
    let source = unsafe { MmapedSafetensors::multi(&files.weights) }.map_err(model)?;
    let mut tensors = Vec::new();
    for (name, view) in source.tensors() {
        if !is_projection(&name) {
            continue;
        }
        let &[rows, cols] = view.shape() else {
            return Err(Error::Model(format!(
                "{}: {name} has shape {:?}, a projection is a matrix",
                files.id,
                view.shape()
            )));
        };
        let mut values = values_to_f32(view.dtype(), view.data()).ok_or_else(|| {
            Error::Model(format!(
                "{}: {name} is {:?}; q8 packs f32, f16 and bf16 weights",
                files.id,
                view.dtype()
            ))
        })?;
        if let Some(rotation) = rotation_of(&name, cols) {
            rotation.rotate_rows(&mut values, cols, kernel);
            let block = [rotation.block() as u32];
            tensors.push((
                format!("{name}.rotation"),
                Packed::new(Dtype::U32, vec![1], bytemuck::cast_slice(&block)),
            ));
        }
        let q8 = Q8Projection::quantize(
            &values,
            rows,
            cols,
            &exact_columns(&source, &name)?,
            &exact_rows(&source, &name)?,
            is_refined(&name),
            kernel,
        );
        let exact_rows = &q8.exact_rows;
        push_indexed(
            &mut tensors,
            (
                format!("{name}.exact_rows"),
                format!("{name}.exact_row_values"),
            ),
            exact_rows.rows(),
            exact_rows.values(),
            cols,
        );
        push_indexed(
            &mut tensors,
            (format!("{name}.exact_columns"), format!("{name}.exact")),
            q8.exact.columns(),
            q8.exact.values(),
            rows,
        );
        push_q8(&mut tensors, &name, &q8.weights);
        if let Some(refinement) = &q8.refinement {
            push_q8(&mut tensors, &format!("{name}.refinement"), refinement);
        }
    }
    if tensors.is_empty() {
        return Err(Error::Model(format!(
            "{}: no `*_proj.weight` tensors to pack",
            files.id
        )));
    }
    let info = HashMap::from([
        (
            "format".to_string(),
            format(kernel.weight_layout()).to_string(),
        ),
        ("fingerprint".to_string(), fingerprint.to_string()),
        ("model".to_string(), files.id.clone()),
    ]);
    // safetensors writes a temporary file beside `path` and renames it.
    safetensors::serialize_to_file(tensors, Some(info), path)
        .map_err(|e| Error::Model(format!("cannot write {}: {e}", path.display())))
}

/// The rotation of the projection weight `name` of `cols` inputs: an MLP's down projection
/// rotates them where their width allows (as the decoder layer, `super::qwen2`, loads it
/// with [`super::projection::Projection::load_heavy_tailed`]; a pack that disagreed
/// would fail to load).
fn rotation_of(name: &str, cols: usize) -> Option<Rotation> {
    name.ends_with("mlp.down_proj.weight")
        .then(|| Rotation::for_width(cols))
        .flatten()
}

/// Adds `q8`'s values and scales to `tensors` as `{name}.q8` and `{name}.scales`.
fn push_q8(tensors: &mut Vec<(String, Packed)>, name: &str, q8: &Q8Rows) {
    let stored = Q8Rows::stored_rows(q8.rows(), q8.layout());
    let padded = q8.quants().len() / stored.max(1);
    tensors.push((
        format!("{name}.q8"),
        Packed::new(
            Dtype::I8,
            vec![stored, padded],
            bytemuck::cast_slice(q8.quants()),
        ),
    ));
    tensors.push((
        format!("{name}.scales"),
        Packed::new(
            Dtype::F32,
            vec![stored, padded / BLOCK],
            bytemuck::cast_slice(q8.scales()),
        ),
    ));
}

/// Indices (exact columns or rows) and their f32 values, run after run.
type Indexed = (Vec<usize>, Vec<f32>);

/// Adds `indices` (U32, `[len]`) and their `values` (F32, `[len, width]`) to `tensors`
/// under `names`, when there are any: exact columns, exact rows.
fn push_indexed(
    tensors: &mut Vec<(String, Packed)>,
    names: (String, String),
    indices: &[usize],
    values: &[f32],
    width: usize,
) {
    if indices.is_empty() {
        return;
    }
    let indices: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    tensors.push((
        names.0,
        Packed::new(
            Dtype::U32,
            vec![indices.len()],
            bytemuck::cast_slice(&indices),
        ),
    ));
    tensors.push((
        names.1,
        Packed::new(
            Dtype::F32,
            vec![indices.len(), width],
            bytemuck::cast_slice(values),
        ),
    ));
}

/// The norm (its weight's name) whose output the projection weight `name` reads, for the
/// projections that read a norm: its gains choose their exact columns. The pairs the
/// decoder layer (`super::qwen2`) wires; a pack that disagreed would fail to load.
fn norm_read_by(name: &str) -> Option<String> {
    const READS: [(&str, &str); 5] = [
        ("self_attn.q_proj.weight", "input_layernorm.weight"),
        ("self_attn.k_proj.weight", "input_layernorm.weight"),
        ("self_attn.v_proj.weight", "input_layernorm.weight"),
        ("mlp.gate_proj.weight", "post_attention_layernorm.weight"),
        ("mlp.up_proj.weight", "post_attention_layernorm.weight"),
    ];
    READS.iter().find_map(|(projection, norm)| {
        let layer = name.strip_suffix(projection)?;
        Some(format!("{layer}{norm}"))
    })
}

/// The input columns the projection `name` of `source` keeps exact: the large gains of
/// the norm it reads, as the model chooses them at load.
fn exact_columns(source: &MmapedSafetensors, name: &str) -> Result<Vec<usize>> {
    match norm_read_by(name) {
        Some(norm) => large_gains_of(source, &norm, name),
        None => Ok(Vec::new()),
    }
}

/// The norm (its weight's name in `source`) that next reads the residual stream the
/// projection weight `name` writes: an attention's output goes to its layer's
/// post-attention norm, an MLP's to the next layer's input norm, or the final norm after
/// the last layer. The pairs the model (`super::qwen2`) wires.
fn norm_read_after(source: &MmapedSafetensors, name: &str) -> Option<String> {
    if let Some(layer) = name.strip_suffix("self_attn.o_proj.weight") {
        return Some(format!("{layer}post_attention_layernorm.weight"));
    }
    let layer = name.strip_suffix("mlp.down_proj.weight")?;
    let (layers, index) = layer.strip_suffix('.')?.rsplit_once('.')?;
    let next = format!(
        "{layers}.{}.input_layernorm.weight",
        index.parse::<usize>().ok()? + 1
    );
    let model = layers.strip_suffix("layers")?;
    Some(match source.get(&next) {
        Ok(_) => next,
        Err(_) => format!("{model}norm.weight"),
    })
}

/// The output rows the projection `name` of `source` keeps exact: the large gains of the
/// norm that reads its output next, as the model chooses them at load.
fn exact_rows(source: &MmapedSafetensors, name: &str) -> Result<Vec<usize>> {
    match norm_read_after(source, name) {
        Some(norm) => large_gains_of(source, &norm, name),
        None => Ok(Vec::new()),
    }
}

/// The large gains (see [`large_gain_columns`]) of the norm weight `norm` of `source`,
/// read to pack `name`.
fn large_gains_of(source: &MmapedSafetensors, norm: &str, name: &str) -> Result<Vec<usize>> {
    let unreadable =
        |why: String| Error::Model(format!("cannot read {norm} to pack {name}: {why}"));
    let view = source.get(norm).map_err(|e| unreadable(e.to_string()))?;
    let gains = values_to_f32(view.dtype(), view.data())
        .ok_or_else(|| unreadable(format!("{:?} gains", view.dtype())))?;
    Ok(large_gain_columns(&gains))
}

/// Removes other packed files of the model at `files`' place in `dir` than `keep` (packed
/// from weights that have since changed there). Failures only leave disk space used.
fn remove_earlier_packs(dir: &Path, files: &ModelFiles, keep: &Path) {
    let stem = file_stem(files);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let fingerprint = name
            .strip_prefix(&stem)
            .and_then(|rest| rest.strip_suffix(".q8.safetensors"));
        // Fingerprints are 16 hex digits: a longer model name that merely starts with
        // this one's stem is not taken for it.
        let ours =
            fingerprint.is_some_and(|f| f.len() == 16 && f.bytes().all(|b| b.is_ascii_hexdigit()));
        if ours && path != keep {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A file-name-safe form of the model's id and a hash of its folder, ending in `-`: two
/// folders of the same name are two models, each keeping its own packed file.
fn file_stem(files: &ModelFiles) -> String {
    let folder = files.config.parent().unwrap_or(Path::new(""));
    let place = blake3::hash(folder.as_os_str().as_encoded_bytes()).to_hex();
    let safe: String = files
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-{}-", &place[..8])
}

/// Little-endian f32, f16 or bf16 values widened to f32 (`None` for other types).
pub(crate) fn values_to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let halves = |convert: fn(u16) -> f32| {
        bytes
            .chunks_exact(2)
            .map(|b| convert(u16::from_le_bytes([b[0], b[1]])))
            .collect()
    };
    match dtype {
        Dtype::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Dtype::BF16 => Some(halves(|bits| half::bf16::from_bits(bits).to_f32())),
        Dtype::F16 => Some(halves(|bits| half::f16::from_bits(bits).to_f32())),
        _ => None,
    }
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A tensor to write: its bytes in memory.
struct Packed {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Packed {
    fn new(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Self {
        Packed {
            dtype,
            shape,
            data: data.to_vec(),
        }
    }
}

impl View for Packed {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::is_refined;

    #[test]
    fn only_the_first_layers_projections_are_refined() {
        assert!(is_refined("model.layers.0.mlp.down_proj.weight"));
        assert!(is_refined("layers.0.self_attn.q_proj.weight"));
        for name in [
            "model.layers.1.mlp.up_proj.weight",
            "model.layers.10.self_attn.o_proj.weight",
            "model.layers.x.mlp.up_proj.weight",
            "model.embed_tokens.weight",
        ] {
            assert!(!is_refined(name), "{name}");
        }
    }
}
