CREATE TABLE "cloud_app_security_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT,
    "createdDateTime" BIGINT,
    "deploymentPackageUrl" TEXT,
    "destinationServiceName" TEXT,
    "isSigned" INTEGER,
    "lastModifiedDateTime" BIGINT,
    "manifest" TEXT,
    "name" TEXT,
    "permissionsRequired" INTEGER,
    "platform" TEXT,
    "policyName" TEXT,
    "publisher" TEXT,
    "riskScore" TEXT,
    "tags" TEXT,
    "type" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_cloud_app_security_profiles_azureTenantId" ON "cloud_app_security_profiles" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_cloud_app_security_profiles_createdDateTime" ON "cloud_app_security_profiles" ("tenant", "createdDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_lastModifiedDateTime" ON "cloud_app_security_profiles" ("tenant", "lastModifiedDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_name" ON "cloud_app_security_profiles" ("tenant", "name", "id");

CREATE INDEX "ix_cloud_app_security_profiles_platform" ON "cloud_app_security_profiles" ("tenant", "platform", "id");

CREATE INDEX "ix_cloud_app_security_profiles_publisher" ON "cloud_app_security_profiles" ("tenant", "publisher", "id");
