//! A small builder for ONNX graph pieces on tract's prost types: float initialisers, nodes with
//! int/float attributes, fresh tensor names under one prefix.

use tract_onnx::pb::{self, attribute_proto::AttributeType, tensor_proto::DataType};

/// Appends nodes and initialisers to a graph; every tensor it makes is named `<prefix>N`.
pub struct Builder<'a> {
    pub graph: &'a mut pb::GraphProto,
    prefix: String,
    next: usize,
}

impl<'a> Builder<'a> {
    pub fn new(graph: &'a mut pb::GraphProto, prefix: &str) -> Builder<'a> {
        Builder {
            graph,
            prefix: prefix.to_string(),
            next: 0,
        }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{}{}_{}", self.prefix, what, self.next)
    }

    /// A float32 initialiser of shape `dims` (row-major `data`); returns its name.
    pub fn constant(&mut self, what: &str, dims: &[usize], data: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(what);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// A float64 initialiser of shape `dims` (row-major `data`); returns its name.
    pub fn constant_f64(&mut self, what: &str, dims: &[usize], data: Vec<f64>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(what);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Double as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// An int64 initialiser of shape `dims` (shapes for Reshape); returns its name.
    pub fn constant_i64(&mut self, what: &str, dims: &[usize], data: Vec<i64>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(what);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// `x` converted to float64 (`to_double`) or back to float32.
    pub fn cast(&mut self, x: &str, to_double: bool) -> String {
        let to = if to_double {
            DataType::Double
        } else {
            DataType::Float
        };
        self.node("Cast", &[x], vec![attr_int("to", to as i64)])
    }

    /// One node `op(inputs) -> fresh output` with attributes; returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node_named(op, inputs, attrs, &out);
        out
    }

    /// Like [`Builder::node`] with a chosen output name (graph outputs).
    pub fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<pb::AttributeProto>,
        out: &str,
    ) {
        let name = format!("{}{}", self.prefix, out.trim_start_matches(&self.prefix));
        self.graph.node.push(pb::NodeProto {
            name,
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            attribute: attrs,
            ..Default::default()
        });
    }
}

pub fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A float tensor value-info `name: [dims]`, a dimension being a number or a symbol.
pub fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Dim::Fixed(v) => Value::DimValue(*v as i64),
                                Dim::Symbol(s) => Value::DimParam(s.clone()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    Fixed(usize),
    Symbol(String),
}
