// PostGraphile 5 for `cargo bench --bench postgraphile`, set up to match how the bench runs
// PostGraphile 4 (see BENCHMARKS.md): the bench passes the connection, schema, host and port
// on the command line; everything else is here.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  disablePlugins: [
    // v4's --disable-default-mutations: no create/update/delete fields.
    "PgMutationCreatePlugin",
    "PgMutationUpdateDeletePlugin",
    // v4 ignores indexes and RBAC unless told otherwise, so every column can filter and sort;
    // without these two, V5 would hide the conditions and orderings the queries use.
    "PgIndexBehaviorsPlugin",
    "PgRBACPlugin",
  ],
  schema: {
    // v4's --simple-collections both: every collection as a connection and as a plain list.
    defaultBehavior: "+connection +resource:connection +list +resource:list",
    // v4's --dynamic-json: JSON columns as JSON values, not strings.
    jsonScalarAsString: false,
    // A schema that does not build should stop the bench, not lose fields quietly.
    dontSwallowErrors: true,
  },
};

export default preset;
