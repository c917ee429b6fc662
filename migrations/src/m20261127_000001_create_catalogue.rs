//! The API catalogue: project → openapi_spec → tag ↔ endpoint, with parameters and bodies.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{cascade_fk, index_on};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000001_create_catalogue"
    }
}

#[derive(DeriveIden)]
enum Project {
    Table,
    Id,
    Title,
    Summary,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OpenapiSpec {
    Table,
    Id,
    ProjectId,
    Title,
    Version,
    BaseUrl,
    SpecFormat,
    SourceUrl,
    ImportedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tag {
    Table,
    Id,
    SpecId,
    Name,
    Description,
    Position,
}

#[derive(DeriveIden)]
enum Endpoint {
    Table,
    Id,
    ProjectId,
    SpecId,
    Method,
    Path,
    OperationId,
    Summary,
    Description,
    Deprecated,
    RemovedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TagEndpoint {
    Table,
    TagId,
    EndpointId,
}

#[derive(DeriveIden)]
enum EndpointParameter {
    Table,
    Id,
    EndpointId,
    Position,
    Name,
    Location,
    Required,
    SchemaType,
    Description,
    Example,
}

#[derive(DeriveIden)]
enum RequestBody {
    Table,
    Id,
    EndpointId,
    ContentType,
    Required,
    Schema,
    Example,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Project::Table)
                    .col(big_pk_auto(Project::Id))
                    .col(string(Project::Title))
                    .col(text_null(Project::Summary))
                    .col(text_null(Project::Description))
                    .col(timestamp_with_time_zone(Project::CreatedAt))
                    .col(timestamp_with_time_zone(Project::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index_on("ix_project_created_at", Project::Table, &["created_at"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(OpenapiSpec::Table)
                    .col(big_pk_auto(OpenapiSpec::Id))
                    .col(big_integer(OpenapiSpec::ProjectId))
                    .col(string(OpenapiSpec::Title))
                    .col(string_null(OpenapiSpec::Version))
                    .col(text(OpenapiSpec::BaseUrl))
                    .col(string(OpenapiSpec::SpecFormat))
                    .col(text_null(OpenapiSpec::SourceUrl))
                    .col(timestamp_with_time_zone(OpenapiSpec::ImportedAt))
                    .col(timestamp_with_time_zone(OpenapiSpec::CreatedAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_openapi_spec_project",
                        OpenapiSpec::Table,
                        OpenapiSpec::ProjectId,
                        Project::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        // A project holds at most one spec per base URL: re-importing updates it in place.
        manager
            .create_index(
                index_on("ux_openapi_spec_project_base_url", OpenapiSpec::Table, &["project_id", "base_url"])
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tag::Table)
                    .col(big_pk_auto(Tag::Id))
                    .col(big_integer(Tag::SpecId))
                    .col(string(Tag::Name))
                    .col(text_null(Tag::Description))
                    .col(integer(Tag::Position).default(0))
                    .foreign_key(&mut cascade_fk("fk_tag_spec", Tag::Table, Tag::SpecId, OpenapiSpec::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index_on("ux_tag_spec_name", Tag::Table, &["spec_id", "name"]).unique().to_owned())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Endpoint::Table)
                    .col(big_pk_auto(Endpoint::Id))
                    .col(big_integer(Endpoint::ProjectId))
                    .col(big_integer(Endpoint::SpecId))
                    .col(string_len(Endpoint::Method, 8))
                    .col(text(Endpoint::Path))
                    .col(string_null(Endpoint::OperationId))
                    .col(text_null(Endpoint::Summary))
                    .col(text_null(Endpoint::Description))
                    .col(boolean(Endpoint::Deprecated).default(false))
                    .col(timestamp_with_time_zone_null(Endpoint::RemovedAt))
                    .col(timestamp_with_time_zone(Endpoint::CreatedAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_endpoint_project",
                        Endpoint::Table,
                        Endpoint::ProjectId,
                        Project::Table,
                    ))
                    .foreign_key(&mut cascade_fk(
                        "fk_endpoint_spec",
                        Endpoint::Table,
                        Endpoint::SpecId,
                        OpenapiSpec::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index_on("ux_endpoint_spec_method_path", Endpoint::Table, &["spec_id", "method", "path"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager.create_index(index_on("ix_endpoint_project", Endpoint::Table, &["project_id", "id"])).await?;
        manager.create_index(index_on("ix_endpoint_method", Endpoint::Table, &["method"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(TagEndpoint::Table)
                    .col(big_integer(TagEndpoint::TagId))
                    .col(big_integer(TagEndpoint::EndpointId))
                    .primary_key(Index::create().col(TagEndpoint::TagId).col(TagEndpoint::EndpointId))
                    .foreign_key(&mut cascade_fk(
                        "fk_tag_endpoint_tag",
                        TagEndpoint::Table,
                        TagEndpoint::TagId,
                        Tag::Table,
                    ))
                    .foreign_key(&mut cascade_fk(
                        "fk_tag_endpoint_endpoint",
                        TagEndpoint::Table,
                        TagEndpoint::EndpointId,
                        Endpoint::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index_on("ix_tag_endpoint_endpoint", TagEndpoint::Table, &["endpoint_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EndpointParameter::Table)
                    .col(big_pk_auto(EndpointParameter::Id))
                    .col(big_integer(EndpointParameter::EndpointId))
                    .col(integer(EndpointParameter::Position))
                    .col(string(EndpointParameter::Name))
                    .col(string_len(EndpointParameter::Location, 8))
                    .col(boolean(EndpointParameter::Required))
                    .col(string_null(EndpointParameter::SchemaType))
                    .col(text_null(EndpointParameter::Description))
                    .col(json_null(EndpointParameter::Example))
                    .foreign_key(&mut cascade_fk(
                        "fk_endpoint_parameter_endpoint",
                        EndpointParameter::Table,
                        EndpointParameter::EndpointId,
                        Endpoint::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index_on(
                "ix_endpoint_parameter_endpoint",
                EndpointParameter::Table,
                &["endpoint_id", "position"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RequestBody::Table)
                    .col(big_pk_auto(RequestBody::Id))
                    .col(big_integer(RequestBody::EndpointId))
                    .col(string(RequestBody::ContentType))
                    .col(boolean(RequestBody::Required))
                    .col(json_null(RequestBody::Schema))
                    .col(json_null(RequestBody::Example))
                    .foreign_key(&mut cascade_fk(
                        "fk_request_body_endpoint",
                        RequestBody::Table,
                        RequestBody::EndpointId,
                        Endpoint::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index_on("ux_request_body_endpoint", RequestBody::Table, &["endpoint_id"])
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RequestBody::Table.into_iden(),
            EndpointParameter::Table.into_iden(),
            TagEndpoint::Table.into_iden(),
            Endpoint::Table.into_iden(),
            Tag::Table.into_iden(),
            OpenapiSpec::Table.into_iden(),
            Project::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
