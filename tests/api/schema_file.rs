//! The checked-in `schema.graphql` must be what `custos schema` prints, and
//! must contain every name of the shared contract that has landed.

#[test]
fn schema_graphql_is_up_to_date() {
    let generated = custos::graphql::sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    if generated != checked_in {
        let diff: Vec<String> = generated
            .lines()
            .zip(checked_in.lines().chain(std::iter::repeat("")))
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  generated:  {a}\n  checked in: {b}", i + 1))
            .collect();
        panic!(
            "schema.graphql is stale: run `cargo run -- schema > schema.graphql`\n{}",
            diff.join("\n")
        );
    }
}
