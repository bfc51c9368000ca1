CREATE TABLE "cloud_app_security_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C",
    "createdDateTime" BIGINT,
    "deploymentPackageUrl" TEXT COLLATE "C",
    "destinationServiceName" TEXT COLLATE "C",
    "isSigned" BOOLEAN,
    "lastModifiedDateTime" BIGINT,
    "manifest" TEXT COLLATE "C",
    "name" TEXT COLLATE "C",
    "permissionsRequired" INTEGER,
    "platform" TEXT COLLATE "C",
    "policyName" TEXT COLLATE "C",
    "publisher" TEXT COLLATE "C",
    "riskScore" TEXT COLLATE "C",
    "tags" JSONB,
    "type" TEXT COLLATE "C",
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_cloud_app_security_profiles_azureTenantId" ON "cloud_app_security_profiles" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_cloud_app_security_profiles_createdDateTime" ON "cloud_app_security_profiles" ("tenant", "createdDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_lastModifiedDateTime" ON "cloud_app_security_profiles" ("tenant", "lastModifiedDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_name" ON "cloud_app_security_profiles" ("tenant", "name", "id");

CREATE INDEX "ix_cloud_app_security_profiles_platform" ON "cloud_app_security_profiles" ("tenant", "platform", "id");

CREATE INDEX "ix_cloud_app_security_profiles_publisher" ON "cloud_app_security_profiles" ("tenant", "publisher", "id");
